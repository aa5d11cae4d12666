"""The hostile-rows experiment's run: the fuzzed rows and the corrupt rows written under
workers with the audit hook, and the checks of what became of them."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from afterward import Afterward, AfterwardError, Job, JobState
from afterward.calls.ids import new_task_id
from afterward.jobs import NewJob

from ... import corrupt_rows
from ...app import AUDIT_ENV, LIBRARY_ENV
from ...harness import TERMINAL, Fleet, Result, store_url
from ...ledger import Ledger
from ...sizes import Size
from .rows import LIBRARY, WORK, Row, _key, _payload, fuzz, valid_rows

NAME = "8 hostile rows"
READABLE = re.compile(r"^[A-Za-z_][\w.]*: \S")
"""A last error reads ``ExceptionName: what happened``."""
MAX_ERROR = 4000
"""Characters a readable last error stays under (a hostile row can be megabytes)."""
STALL = 5.0
"""Seconds within which a good task right behind a corrupt row must have finished."""
LIBRARY_CODE = """import os


def run(command: str) -> None:
    os.system(command)
"""
"""The library the app imports from a folder outside site-packages."""


async def _write(url: str, rows: list[Row]) -> tuple[list[Row], Counter[str]]:
    """Write each row on its own; return the rows stored and why the others were not."""
    afterward = Afterward(url=url, execution="workers")
    stored, refused = [], Counter[str]()
    try:
        await afterward.open()
        for row in rows:
            try:
                await afterward.store.enqueue([row.job], now=time.time())
            except Exception as exc:
                reason = str(exc).split(": ", 1)[-1]  # after the store's URL, if named
                refused[f"{type(exc).__name__}: {reason[:60]}"] += 1
            else:
                stored.append(row)
    finally:
        await afterward.aclose()
    return stored, refused


async def _total(url: str) -> int:
    """How many tasks the store holds."""
    afterward = Afterward(url=url, execution="workers")
    try:
        await afterward.open()
        return sum((await afterward.store.counts()).values())
    finally:
        await afterward.aclose()


async def _jobs(url: str, ids: list[str]) -> dict[str, Job]:
    afterward = Afterward(url=url, execution="workers")
    try:
        await afterward.open()
        return {job_id: await afterward.store.get(job_id) for job_id in ids}
    finally:
        await afterward.aclose()


async def _cancel(url: str, ids: list[str]) -> int:
    """Cancel the tasks `ids`; return how many ended `cancelled`."""
    afterward = Afterward(url=url, execution="workers")
    done = 0
    try:
        await afterward.open()
        for job_id in ids:
            with contextlib.suppress(AfterwardError):
                await afterward.store.cancel(job_id, now=time.time())
            done += (await afterward.store.get(job_id)).state is JobState.CANCELLED
    finally:
        await afterward.aclose()
    return done


def _wait_settled(url: str, ids: list[str], timeout: float) -> float:
    """Wait until every task of `ids` is finished (or `timeout`); return the seconds."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        jobs = asyncio.run(_jobs(url, ids))
        if all(job.state in TERMINAL for job in jobs.values()):
            break
        time.sleep(0.5)
    return time.monotonic() - start


class AuditedFleet(Fleet):
    """Worker processes running with the audit hook; their logs go to `log`."""

    log: Path

    def __init__(self, url: str, folder: Path, ledger: Ledger, count: int) -> None:
        self.audit = folder / "audit.log"
        self.library = folder / "lib"
        self.library.mkdir(exist_ok=True)
        (self.library / f"{LIBRARY}.py").write_text(LIBRARY_CODE)
        super().__init__(
            url,
            folder,
            ledger,
            count,
            ["--concurrency", "8"],
            env={AUDIT_ENV: str(self.audit), LIBRARY_ENV: LIBRARY},
            log=folder / "workers.log",
            paths=[self.library],
        )

    def audited(self) -> int:
        """How many live workers hold the audit log open (have the hook installed)."""
        found = 0
        for proc in self.procs:
            fds = Path(f"/proc/{proc.pid}/fd")
            try:
                found += any(os.readlink(fd) == str(self.audit) for fd in fds.iterdir())
            except OSError:
                continue
        return found


@dataclass
class Corrupt:
    """A corrupt row the store holds, and the good task written right behind it."""

    case: str
    id: str
    probe: str
    due: bool


async def _write_corrupt(url: str, kind: str) -> list[Corrupt]:
    """Each corrupt row `kind` can hold, each followed by a good task in its queue."""
    written = []
    afterward = Afterward(url=url, execution="workers")
    try:
        await afterward.open()
        for case in corrupt_rows.CASES[kind]:
            if case in corrupt_rows.REFUSED[kind]:
                continue
            job_id = await corrupt_rows.write_corrupt(url, case)
            probe = NewJob(
                id=new_task_id(),
                function=WORK,
                payload=_payload({"args": [f"probe-{case}", 1]}),
                max_attempts=1,
            )
            await afterward.store.enqueue([probe], now=time.time())
            due = (kind, case) not in corrupt_rows.NEVER_DUE
            written.append(Corrupt(case, job_id, probe.id, due))
    finally:
        await afterward.aclose()
    return written


def _stalled(corrupt: list[Corrupt], jobs: dict[str, Job], started: float) -> list[str]:
    """The cases whose good task did not succeed within `STALL` seconds of `started`."""
    late = []
    for row in corrupt:
        probe = jobs[row.probe]
        took = (probe.finished_at or math.inf) - started
        if probe.state is not JobState.SUCCEEDED or took > STALL:
            late.append(f"{row.case} ({probe.state.value}, {took:.1f} s)")
    return late


def _wait_audited(fleet: AuditedFleet, count: int, timeout: float = 30.0) -> float:
    """Wait until `count` workers of `fleet` run with the audit hook; return the time."""
    deadline = time.monotonic() + timeout
    while fleet.audited() < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return time.time()


def _readable(job: Job) -> bool:
    error = job.last_error or ""
    return bool(READABLE.match(error)) and len(error) <= MAX_ERROR


def run(kind: str, folder: Path, size: Size) -> tuple[Result, list[str]]:
    """Write the fuzzed rows under running workers; return the result and the store URL."""
    folder.mkdir(parents=True, exist_ok=True)
    url = store_url(kind, folder)
    ledger = Ledger(folder / "ledger.db")
    rows = fuzz(size.hostile_rows, folder)
    fleet = AuditedFleet(url, folder, ledger, size.workers)
    try:
        time.sleep(2)  # the workers start (and install their audit hook) before any row
        stored, refused = asyncio.run(_write(url, rows))
        due = [r for r in stored if not r.never_due]
        seconds = _wait_settled(url, [r.job.id for r in due], timeout=120)
        audited = fleet.audited()
        crashed = sum(1 for proc in fleet.procs if proc.poll() is not None)
    finally:
        codes = fleet.stop()
    # Corrupt rows are made by changing stored tasks in place, which a running worker could
    # take in between: they are written while no worker runs, then a fresh fleet starts.
    corrupt = asyncio.run(_write_corrupt(url, kind))
    fleet = AuditedFleet(url, folder, ledger, size.workers)
    try:
        started = _wait_audited(fleet, 1)  # a worker is up: from now, the queue must flow
        _wait_audited(fleet, size.workers)
        behind = [c.probe for c in corrupt] + [c.id for c in corrupt if c.due]
        seconds += _wait_settled(url, behind, timeout=60)
        audited = min(audited, fleet.audited())
        crashed += sum(1 for proc in fleet.procs if proc.poll() is not None)
    finally:
        codes += fleet.stop()
    never = [r for r in stored if r.never_due]
    jobs = asyncio.run(_jobs(url, [r.job.id for r in stored] + [c.probe for c in corrupt]))
    broken = asyncio.run(_jobs(url, [c.id for c in corrupt if c.due]))
    chosen = {_key(r) for r in valid_rows(stored)} | {f"probe-{c.case}" for c in corrupt}
    hostile = [jobs[r.job.id] for r in due if not r.valid]
    valid = [r for r in due if r.valid]
    runs = ledger.runs()
    never_started = sum(1 for r in never if jobs[r.job.id].attempts == 0)
    held = asyncio.run(_total(url))
    cancelled = asyncio.run(_cancel(url, [r.job.id for r in never]))
    stuck = Counter(j.state.value for j in hostile if j.state is not JobState.FAILED)
    unreadable = [j for j in hostile if j.state is JobState.FAILED and not _readable(j)]
    outside = sorted(key for key in runs if key not in chosen)
    not_failed = [c.case for c in corrupt if c.due and broken[c.id].state is not JobState.FAILED]
    stalled = _stalled(corrupt, jobs, started)
    audit = folder / "audit.log"
    audit_lines = audit.read_text(errors="replace").splitlines() if audit.exists() else []
    result = Result(
        experiment=NAME,
        store=kind,
        accepted=len(stored),
        lost=sum(1 for r in valid if runs[_key(r)] == 0),
        twice=sum(1 for r in valid if runs[_key(r)] > 1),
        seconds=seconds,
        checks={
            "worker crashes 0": crashed == 0 and all(code == 0 for code in codes),
            "hostile rows failed": not stuck,
            "with a readable reason": not unreadable,
            "valid rows succeeded": all(jobs[r.job.id].state is JobState.SUCCEEDED for r in valid),
            f"audit hook in all {size.workers} workers": audited == size.workers,
            "imports / code run outside the registry 0": not audit_lines,
            "no command ran": not (folder / "pwned").exists(),
            "rows that ran a function outside the allow-list 0": not outside,
            "corrupt rows failed": not not_failed,
            f"queue stalls 0 (good task behind each corrupt row done in {STALL:.0f} s)": (
                not stalled
            ),
            "never-due rows never started, cancellable": never_started == cancelled == len(never),
            "refused writes left nothing": held == len(stored) + 2 * len(corrupt),
        },
        notes=(
            f"{len(rows)} rows: {dict(Counter(r.kind for r in rows))}; stored {len(stored)}, "
            f"refused by the store: {dict(refused)}; due hostile {len(hostile)} (not failed: "
            f"{dict(stuck)}; unreadable: {[j.last_error for j in unreadable][:3]}), valid "
            f"{len(valid)}; never due {len(never)} "
            f"({dict(Counter(jobs[r.job.id].state.value for r in never))}); audit: "
            f"{audit_lines[:5]}; last errors: "
            f"{dict(Counter((j.last_error or '').split(':')[0] for j in hostile))}; "
            f"corrupt rows {len(corrupt)} (not failed: {not_failed}; stalled: {stalled}; "
            f"reasons: {sorted({(j.last_error or '')[:60] for j in broken.values()})}); "
            f"ran outside the allow-list: {outside[:3]}"
        ),
    )
    return result, [url]
