"""Zombie worker: SIGSTOP a worker past its lease while it runs a task, let another worker
take the task, then SIGCONT the first. Writes accepted from the stale holder must be 0:
the store records the task's success once, from the new holder."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from afterward import JobState

from .. import app
from ..harness import Fleet, Result, enqueue, jobs_with_history, pid_of, store_url, wait_finished
from ..ledger import Ledger
from ..sizes import Size

NAME = "4 zombie worker (SIGSTOP past lease)"
LEASE = 1.5
TASK_MS = 4000


def _holder(url: str) -> int:
    jobs = asyncio.run(jobs_with_history(url))
    running = [j for j in jobs if j.state is JobState.RUNNING and j.lease_owner]
    return pid_of(running[0].lease_owner or "") if running else -1


def _taken_over(url: str, stale_pid: int) -> bool:
    (job,) = asyncio.run(jobs_with_history(url))
    return job.attempts >= 2 and pid_of(job.history[-1].worker) != stale_pid


def _round(kind: str, folder: Path, n: int) -> tuple[Result, str]:
    folder.mkdir(parents=True, exist_ok=True)
    url = store_url(kind, folder)
    ledger = Ledger(folder / "ledger.db")
    asyncio.run(enqueue(url, [(app.work, (f"z{n}", TASK_MS))]))
    fleet = Fleet(url, folder, ledger, 2, env={"AFTERWARD_LEASE": str(LEASE)})
    started = time.monotonic()
    try:
        while (stale := _holder(url)) < 0:
            time.sleep(0.05)
        victim = next(i for i, p in enumerate(fleet.procs) if p.pid == stale)
        fleet.kill(victim, signal.SIGSTOP)
        stopped_at = time.time()
        while not _taken_over(url, stale):
            time.sleep(0.05)
        taken_at = time.time()
        fleet.kill(victim, signal.SIGCONT)
        wait_finished(url, 1, timeout=60)
        time.sleep(TASK_MS / 1000 + 1.0)  # the stale holder finishes its copy and reports
    finally:
        fleet.stop()
    (job,) = asyncio.run(jobs_with_history(url))
    outcomes = [None if a.outcome is None else a.outcome.value for a in job.history]
    stale_successes = [
        a for a in job.history if pid_of(a.worker) == stale and a.outcome == "succeeded"
    ]
    result = Result(
        experiment=NAME,
        store=kind,
        accepted=1,
        lost=0 if ledger.runs()[f"z{n}"] >= 1 and job.state is JobState.SUCCEEDED else 1,
        twice=1 if ledger.runs()[f"z{n}"] > 1 else 0,
        seconds=time.monotonic() - started,
        recovery=[taken_at - stopped_at],
        checks={
            "stale writes accepted = 0": not stale_successes,
            "success recorded once": outcomes.count("succeeded") == 1,
        },
        notes=f"outcomes {outcomes}",
    )
    return result, url


def run(kind: str, folder: Path, size: Size) -> tuple[Result, list[str]]:
    """`size.zombie_rounds` rounds, merged into one result."""
    results, urls = [], []
    for n in range(size.zombie_rounds):
        result, url = _round(kind, folder / f"round{n}", n)
        results.append(result)
        urls.append(url)
    merged = results[0]
    for other in results[1:]:
        merged.accepted += other.accepted
        merged.lost += other.lost
        merged.twice += other.twice
        merged.seconds += other.seconds
        merged.recovery += other.recovery
        merged.checks = {k: v and other.checks[k] for k, v in merged.checks.items()}
    return merged, urls
