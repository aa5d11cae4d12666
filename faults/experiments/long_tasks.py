"""Long tasks: tasks running 10x the lease, half sleeping, half CPU-bound in a thread.
Leases are renewed by the runner, so false take-overs must be 0: one attempt each."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from .. import app
from ..harness import Fleet, Result, enqueue, jobs_with_history, store_url, wait_finished
from ..ledger import Ledger
from ..sizes import Size

NAME = "5 long tasks (10x lease)"


def run(kind: str, folder: Path, size: Size) -> tuple[Result, list[str]]:
    """Run `size.long_tasks` tasks of 10 leases each on two workers."""
    lease = size.long_lease
    seconds = 10 * lease
    url = store_url(kind, folder)
    ledger = Ledger(folder / "ledger.db")
    calls = [
        (app.burn if n % 2 else app.work, (f"l{n}", seconds if n % 2 else seconds * 1000))
        for n in range(size.long_tasks)
    ]
    total = asyncio.run(enqueue(url, calls))
    per_worker = str(max(1, size.long_tasks // 2))
    fleet = Fleet(
        url, folder, ledger, 2, ["--concurrency", per_worker], env={"AFTERWARD_LEASE": str(lease)}
    )
    started = time.monotonic()
    try:
        wait_finished(url, total, timeout=seconds * size.long_tasks + 120)
    finally:
        fleet.stop()
    jobs = asyncio.run(jobs_with_history(url))
    runs = ledger.runs()
    takeovers = sum(1 for j in jobs if j.attempts > 1)
    return Result(
        experiment=NAME,
        store=kind,
        accepted=total,
        lost=sum(1 for n in range(total) if runs[f"l{n}"] == 0),
        twice=sum(1 for c in runs.values() if c > 1),
        seconds=time.monotonic() - started,
        checks={"false take-overs = 0": takeovers == 0},
        notes=f"{takeovers} take-overs; lease {lease:g} s, tasks {seconds:g} s, "
        f"{size.long_tasks // 4} CPU-bound threads per worker",
    ), [url]
