"""Enqueue→start latency for an idle worker, per store.

One `afterward worker` process waits on the store; this script enqueues one task at a time,
waits for it to start, then enqueues the next. The task records how long after its enqueue
it started (both processes share this machine's clock).

    .venv/bin/python -m bench.latency [--tasks 300] [--store sqlite|postgres|redis ...]

Prints p50 / p99 / max per store, in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from afterward import Afterward

from . import latency_app
from .stores import drop, fresh_url

ROOT = Path(__file__).resolve().parents[1]
STORES = ("sqlite", "postgres", "redis")


async def measure(url: str, tasks: int, ledger: Path) -> list[float]:
    afterward = Afterward(url=url, execution="workers")
    await afterward.open()
    env = {**os.environ, "AFTERWARD_URL": url, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "afterward",
            "worker",
            "bench.latency_app:afterward",
            "--log-level",
            "WARNING",
        ],
        env=env,
    )
    try:
        await asyncio.sleep(2.0)  # let the worker start and go idle
        for n in range(tasks):
            await afterward.enqueue(latency_app.note_start, time.time(), str(ledger))
            while _count(ledger) <= n:
                await asyncio.sleep(0.0005)
            await asyncio.sleep(0.005)  # idle again before the next one
    finally:
        worker.terminate()
        worker.wait(30)
        await afterward.aclose()
    return [float(x) * 1000 for x in ledger.read_text().split()]


def _count(ledger: Path) -> int:
    try:
        return ledger.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--store", action="append", choices=sorted(STORES))
    args = parser.parse_args()
    for name in args.store or STORES:
        with tempfile.TemporaryDirectory() as tmp:
            url = fresh_url(name, Path(tmp))
            try:
                delays = sorted(asyncio.run(measure(url, args.tasks, Path(tmp) / "ledger.txt")))
            finally:
                drop(url)
            p50 = statistics.median(delays)
            p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
            print(
                f"{name:9} n={len(delays)}  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
                f"max {delays[-1]:6.2f} ms"
            )


if __name__ == "__main__":
    main()
