"""Worker throughput and enqueue rates with no-op tasks, per store.

- **tasks/s**: N no-op tasks are stored first (in bulk), then `afterward worker` starts
  with 1 (then 2) processes; the clock runs from the first task started to the last one
  succeeded, read from the store's own attempt records.
- **enqueue/s, one at a time**: one client awaits `Afterward.enqueue` N times in a row.
- **enqueue/s, bulk**: one client stores N tasks in calls of 500 (`Store.enqueue`).

    .venv/bin/python -m bench.throughput [--tasks 20000] [--store sqlite|postgres|redis ...]
                                         [--processes 1 --processes 2] [--kind sync|async]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from afterward import Afterward, JobState
from afterward.stores import JobFilter

from . import throughput_app
from .stores import KINDS, drop, fresh_url

ROOT = Path(__file__).resolve().parents[1]
BULK = 500


@dataclass(frozen=True)
class Figures:
    """One store's figures."""

    store: str
    enqueue_one: float
    enqueue_bulk: float
    tasks_per_s: dict[int, float]


async def _client(url: str) -> Afterward:
    afterward = Afterward(url=url, execution="workers", tasks=[throughput_app.noop])
    await afterward.open()
    return afterward


async def enqueue_one_at_a_time(url: str, n: int, func: object) -> float:
    afterward = await _client(url)
    try:
        started = time.perf_counter()
        for i in range(n):
            await afterward.enqueue(func, i)  # type: ignore[arg-type]
        return n / (time.perf_counter() - started)
    finally:
        await afterward.aclose()


async def enqueue_bulk(url: str, n: int, func: object) -> float:
    afterward = await _client(url)
    try:
        jobs = [afterward._new_job(afterward.prepare(func, (i,), {})) for i in range(n)]  # type: ignore[arg-type]
        started = time.perf_counter()
        for at in range(0, n, BULK):
            await afterward.store.enqueue(jobs[at : at + BULK], now=time.time())
        return n / (time.perf_counter() - started)
    finally:
        await afterward.aclose()


async def _progress(url: str) -> tuple[int, int]:
    afterward = await _client(url)
    try:
        counts = await afterward.store.counts()
        done = sum(n for (_, s), n in counts.items() if s is JobState.SUCCEEDED)
        return done, sum(counts.values())
    finally:
        await afterward.aclose()


async def _span(url: str) -> float:
    """Seconds from the first task finished to the last (worker start-up left out)."""
    afterward = await _client(url)
    try:
        first, last = float("inf"), 0.0
        offset = 0
        while page := await afterward.store.list(JobFilter(), limit=1000, offset=offset):
            offset += len(page)
            times = [j.finished_at for j in page if j.finished_at is not None]
            first, last = min(first, *times), max(last, *times)
        return last - first
    finally:
        await afterward.aclose()


def run_workers(url: str, n: int, processes: int, func: object) -> float:
    """Tasks/s of `processes` worker processes draining `n` stored tasks."""
    asyncio.run(enqueue_bulk(url, n, func))
    env = {**os.environ, "AFTERWARD_URL": url, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "afterward",
        "worker",
        "bench.throughput_app:afterward",
        "--processes",
        str(processes),
        "--log-level",
        "WARNING",
    ]
    worker = subprocess.Popen(command, env=env)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done, total = asyncio.run(_progress(url))
            if done >= total:
                break
            time.sleep(0.5)
        else:
            raise SystemExit(f"{processes} worker(s) did not finish {n} tasks in 600 s")
    finally:
        worker.terminate()
        worker.wait(60)
    return n / asyncio.run(_span(url))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--store", action="append", choices=KINDS)
    parser.add_argument("--processes", type=int, action="append")
    parser.add_argument("--kind", choices=["sync", "async"], default="async")
    args = parser.parse_args()
    func = throughput_app.anoop if args.kind == "async" else throughput_app.noop
    for name in args.store or list(KINDS):
        rates: dict[int, float] = {}
        with tempfile.TemporaryDirectory() as tmp:
            urls = [fresh_url(name, Path(tmp)) for _ in range(2 + len(args.processes or [1, 2]))]
            try:
                one = asyncio.run(enqueue_one_at_a_time(urls[0], 2000, func))
                bulk = asyncio.run(enqueue_bulk(urls[1], args.tasks, func))
                for url, processes in zip(urls[2:], args.processes or [1, 2], strict=True):
                    rates[processes] = run_workers(url, args.tasks, processes, func)
            finally:
                for url in urls:
                    drop(url)
        shown = "  ".join(f"{p} process(es) {r:8,.0f} tasks/s" for p, r in rates.items())
        print(
            f"{name:9} enqueue one-at-a-time {one:8,.0f}/s  bulk {bulk:8,.0f}/s  {shown}",
            flush=True,
        )


if __name__ == "__main__":
    main()
