"""Graceful shutdown: SIGTERM every worker while many tasks are in flight, with a short
grace period. Tasks that finish within the grace period are not run again; the rest are
handed back without spending an attempt and finish on the next workers; lost 0."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from afterward import JobState

from .. import app
from ..harness import Fleet, Result, enqueue, jobs_with_history, states, store_url, wait_finished
from ..ledger import Ledger
from ..sizes import Size

NAME = "6 graceful shutdown (SIGTERM)"
GRACE = 2.0
SHORT_MS, LONG_MS = 500.0, 5000.0
WORKERS = 2


def run(kind: str, folder: Path, size: Size) -> tuple[Result, list[str]]:
    """`size.graceful_tasks` tasks, half finishing within the grace period, half not."""
    url = store_url(kind, folder)
    ledger = Ledger(folder / "ledger.db")
    n = size.graceful_tasks
    calls = [(app.work, (f"g{i}", SHORT_MS if i % 2 else LONG_MS)) for i in range(n)]
    total = asyncio.run(enqueue(url, calls))
    args = ["--concurrency", str(n // WORKERS), "--grace-period", str(GRACE)]
    first = Fleet(url, folder, ledger, WORKERS, args)
    started = time.monotonic()
    while asyncio.run(states(url)).get(JobState.RUNNING, 0) < total:
        if asyncio.run(states(url)).get(JobState.SUCCEEDED, 0) or time.monotonic() > started + 60:
            first.stop(grace=GRACE)
            raise RuntimeError(
                "the workers never held every task at once before some finished: the "
                "machine is too busy for this experiment (run it again on a quiet machine)"
            )
        time.sleep(0.05)
    codes = first.stop(grace=GRACE)
    stop_seconds = time.monotonic() - started
    handed_back = asyncio.run(states(url)).get(JobState.QUEUED, 0)
    second = Fleet(url, folder, ledger, WORKERS, args)
    try:
        wait_finished(url, total, timeout=120)
    finally:
        second.stop()
    jobs = asyncio.run(jobs_with_history(url))
    runs = ledger.runs()
    released = [j for j in jobs if any(a.outcome == "released" for a in j.history)]
    short_rerun = sum(1 for i in range(1, n, 2) if runs[f"g{i}"] > 1)
    budget_kept = all(j.max_attempts == j.options["max_attempts"] + 1 for j in released)
    return Result(
        experiment=NAME,
        store=kind,
        accepted=total,
        lost=sum(1 for i in range(total) if runs[f"g{i}"] == 0),
        twice=sum(1 for c in runs.values() if c > 1),
        seconds=time.monotonic() - started,
        checks={
            "workers exited 0": codes == [0] * WORKERS,
            "finished in grace not re-run": short_rerun == 0,
            "handed back without spending an attempt": bool(released) and budget_kept,
        },
        notes=f"stopped in {stop_seconds:.1f} s; {handed_back} handed back",
    ), [url]
