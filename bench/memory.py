"""Worker memory over a long run: does a worker's RSS grow with the tasks it has run?

Enqueues `--tasks` no-op tasks (default 1,000,000) in bulk, starts one `afterward worker`
process on them, and samples the resident memory (VmRSS) of the worker's processes every
second until every task has run. Prints a table per store and, with ``--markdown F``,
writes it to F:

    .venv/bin/python -m bench.memory [--tasks 1000000] [--store sqlite ...] [--markdown F]

Growth is measured from the sample at 10 % of the tasks done (after start-up and warm-up)
to the last one.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from afterward import Afterward

from . import memory_app
from .latency import STORES
from .stores import drop, fresh_url

ROOT = Path(__file__).resolve().parents[1]
BATCH = 1000
"""Tasks per `enqueue_many` call."""


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants (the supervisor and its worker process)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return found


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


async def measure(url: str, tasks: int, ledger: Path) -> list[tuple[float, int, int]]:
    """(seconds since the worker started, tasks done, largest worker RSS in KiB) per second."""
    producer = Afterward(url=url, execution="workers")
    await producer.open()
    try:
        for at in range(0, tasks, BATCH):
            count = min(BATCH, tasks - at)
            await producer.enqueue_many(memory_app.noop, [(str(ledger),)] * count)
    finally:
        await producer.aclose()
    env = {**os.environ, "AFTERWARD_URL": url, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "afterward", "worker", "bench.memory_app:afterward"]
    worker = subprocess.Popen([*command, "--log-level", "WARNING"], env=env)
    samples: list[tuple[float, int, int]] = []
    started = time.monotonic()
    try:
        while True:
            done = ledger.stat().st_size if ledger.exists() else 0
            rss = max((_rss_kib(p) for p in _tree(worker.pid)), default=0)
            samples.append((time.monotonic() - started, done, rss))
            if done >= tasks:
                return samples
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with {worker.returncode} after {done} tasks")
            await asyncio.sleep(1.0)
    finally:
        worker.terminate()
        worker.wait(60)


def summary(tasks: int, samples: list[tuple[float, int, int]]) -> dict[str, float]:
    """RSS at 10 %, 50 % and 100 % of the tasks done, growth, and the rate."""

    def at(fraction: float) -> tuple[float, int, int]:
        return next(s for s in samples if s[1] >= tasks * fraction)

    tenth, half, last = at(0.1), at(0.5), samples[-1]
    first_run = next(s for s in samples if s[1] > 0)
    return {
        "tasks": tasks,
        "seconds": last[0] - first_run[0],
        "rate": tasks / max(last[0] - first_run[0], 1e-9),
        "rss_10": tenth[2] / 1024,
        "rss_50": half[2] / 1024,
        "rss_end": last[2] / 1024,
        "rss_max": max(s[2] for s in samples) / 1024,
        "growth": (last[2] - tenth[2]) / 1024,
    }


def table(rows: dict[str, dict[str, float]]) -> str:
    lines = [
        "| store | tasks | tasks/s | RSS at 10 % | at 50 % | at the end | max | growth 10 %→end |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for store, r in rows.items():
        lines.append(
            f"| {store} | {r['tasks']:,.0f} | {r['rate']:,.0f} | {r['rss_10']:.1f} MiB | "
            f"{r['rss_50']:.1f} MiB | {r['rss_end']:.1f} MiB | {r['rss_max']:.1f} MiB | "
            f"{r['growth']:+.1f} MiB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--store", action="append", choices=sorted(STORES))
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    rows: dict[str, dict[str, float]] = {}
    for store in args.store or STORES:
        with tempfile.TemporaryDirectory() as tmp:
            url = fresh_url(store, Path(tmp))
            ledger = Path(tmp) / "ledger"
            try:
                samples = asyncio.run(measure(url, args.tasks, ledger))
            finally:
                drop(url)
            rows[store] = summary(args.tasks, samples)
            print(f"{store}: {rows[store]}", flush=True)
    text = table(rows)
    print(text)
    if args.markdown:
        when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
        head = (
            f"Measured {when} on {platform.node()} ({platform.machine()}, "
            f"{os.cpu_count()} cores), Python {platform.python_version()}, one worker "
            f"process (concurrency 8), by `python -m bench.memory --tasks {args.tasks}`.\n\n"
        )
        args.markdown.write_text(head + text + "\n")


if __name__ == "__main__":
    main()
