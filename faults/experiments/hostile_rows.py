"""Hostile rows: fuzzed rows written straight into the store (`Store.enqueue`), bypassing
`add_task`'s checks, with about a fifth of valid ones mixed in, through worker processes
whose every import and code execution outside what they had loaded at start is written
down by an audit hook (``AFTERWARD_FAULTS_AUDIT``, see `faults.app`).

Rows name foreign functions (``os:system``, ``builtins:eval``, ``subprocess:Popen``…),
functions the app never registered (``faults.app:not_a_task``, ``faults.ledger:record``,
and ``outside_lib:run`` of a library the app imports from a folder on PYTHONPATH, outside
site-packages), or call ``faults.app:work(key: str, ms: float)`` with payloads that are
not JSON, JSON of the wrong shape, arguments of the wrong types, huge or deeply nested
values, NaN and infinities, unicode junk, or junk retry options; rows get extreme
priorities and ``run_at`` times. Must hold: no worker process crashes; every hostile row
that comes due ends `failed` with a readable last error; every valid row succeeds; the
audit log stays empty and no command ran. A row whose ``run_at`` never comes (far future,
infinite) must never start and must stay cancellable: that is how it is handled. A row the
store refuses to write (its `enqueue` raises) must leave nothing behind; those are
counted.

Then, once those have settled, each corrupt row the store can hold (`faults.corrupt_rows`:
options that are not JSON, text in a time column, invalid UTF-8, a bogus state, an attempt
count at the integer limit…) is written with a good task right behind it in the same
queue: the corrupt row must end `failed` and the good one must finish within `STALL`
seconds (no queue stalls) of a fresh fleet's first worker being up: corrupt rows are made
by changing stored tasks in place, so they are written while no worker runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from afterward import Afterward, AfterwardError, Job, JobState
from afterward.calls.preparer import new_task_id
from afterward.errors import InvalidOption
from afterward.jobs import NewJob
from afterward.options import StoredOptions

from .. import corrupt_rows
from ..app import AUDIT_ENV, LIBRARY_ENV
from ..harness import TERMINAL, Fleet, Result, store_url
from ..ledger import Ledger
from ..sizes import Size

NAME = "8 hostile rows"
VALID_SHARE = 0.2
WORK = "faults.app:work"
READABLE = re.compile(r"^[A-Za-z_][\w.]*: \S")
"""A last error reads ``ExceptionName: what happened``."""
MAX_ERROR = 4000
"""Characters a readable last error stays under (a hostile row can be megabytes)."""
MB = 1024 * 1024
STALL = 5.0
"""Seconds within which a good task right behind a corrupt row must have finished."""
LIBRARY = "outside_lib"
LIBRARY_CODE = """import os


def run(command: str) -> None:
    os.system(command)
"""
"""The library the app imports from a folder outside site-packages."""

FOREIGN = [
    "os:system",
    "builtins:eval",
    "subprocess:Popen",
    "os.system",
    "builtins.eval",
    "subprocess.Popen",
    "builtins:exec",
    "builtins:__import__",
    "evil_module:run",
    "antigravity:fly",
    "faults.app:os",
    "faults.app:record",
    "\u202efaults.app:work",
    "faults.app:work\x00",
    "f" * (2 * MB) + ":x",
    "faults.app:" + "w" * MB,
    "subprocess:run",
    "posix:system",
    "importlib:import_module",
    "ctypes:string_at",
    "shutil:rmtree",
    "pickle:loads",
    "sys:exit",
    "this:s",
    "faults.app:ctypes",
    "faults.app:afterward",
    "faults.app:Afterward",
    "faults.app:task",
    "faults.app:__import__",
    "faults.app:__builtins__",
    "faults:app",
    "faults.app:work.__globals__",
    "afterward.calls.preparer:new_task_id",
    "afterward.testing:drain",
    ":",
    "",
    "faults.app:",
    ":work",
    "faults.app:work:work",
    "../../etc/passwd:x",
    "faults.app:wörk",
    "faults.app:work\u200b",
    "faults.app:not_a_task",
    "faults.ledger:record",
    f"{LIBRARY}:run",
]
"""Function names no worker may run (every one outside the registry)."""

NOT_JSON = [
    "",
    "nope",
    "{",
    "[1, 2",
    '{"args": ["k", 1]',
    "{'args': ['k', 1]}",
    "\ufeff" + '{"args": ["k", 1]}',
    '{"args": ["a\x00b", 1]}',
    '{"args": ["k", 1]} trailing',
    "\x00",
    "\ud800",
]
WRONG_SHAPE = [
    "null",
    "true",
    "[]",
    "{}",
    '"args"',
    "1e999999",
    "NaN",
    '{"args": "k"}',
    '{"args": null}',
    '{"args": {"key": "k", "ms": 1}}',
    '{"kwargs": {"key": "k", "ms": 1}}',
    '{"args": ["k", 1], "kwargs": []}',
    '{"args": ["k", 1], "kwargs": "x"}',
]
WRONG_ARGS: list[Any] = [
    {"args": [123, 1]},
    {"args": [None, 1]},
    {"args": [[], 1]},
    {"args": [{}, 1]},
    {"args": [True, 1]},
    {"args": ["k", "abc"]},
    {"args": ["k", []]},
    {"args": ["k", None]},
    {"args": ["k", {}]},
    {"args": ["k", [1]]},
    {"args": []},
    {"args": ["k"]},
    {"args": ["k", 1, 2]},
    {"args": ["k", 1], "kwargs": {"evil": 1}},
    {"args": ["k", 1], "kwargs": {"key": "k"}},
    {"args": ["k", 1], "kwargs": {"__class__": 1}},
    {"args": ["\U0001d518\U0001d52b\u202e zero\u200bwidth", "\U0001f642"]},
]
RUNTIME = [
    '{"args": ["k", NaN]}',
    '{"args": ["k", Infinity]}',
    '{"args": ["k", -Infinity]}',
    '{"args": ["k", 1e308]}',
    '{"args": ["k", -5]}',
    '{"args": ["k", 1e999]}',
]
"""Well-typed calls `work` itself fails on (``time.sleep`` refuses the value): ordinary
failed attempts, retried until their (small) max attempts are spent."""
OPTIONS: list[dict[str, Any]] = [
    {"max_attempts": "many"},
    {"max_attempts": None},
    {"max_attempts": 0},
    {"time_limit": -1},
    {"time_limit": "soon"},
    {"time_limit": [1]},
    {"backoff_base": -3},
    {"backoff_max": 1e400},
]
"""Retry options no policy can be made of (written with a valid payload)."""

EXTREME_PRIORITIES = [2**63 - 1, -(2**63), 2**31 - 1, -(2**31), 2**31, 2**64]
EXTREME_RUN_AT = [-1e12, 0.0, -math.inf, 1.0]
"""``run_at`` times long past (due at once)."""
NEVER_RUN_AT = [1e12, 1e300, math.inf]
"""``run_at`` times that never come (stay `scheduled`, cancellable). NaN is not among them:
every store's enqueue refuses it, so no store orders a time that compares with nothing."""


@dataclass
class Row:
    """One fuzzed row and what must become of it."""

    kind: str
    """valid, foreign, not_json, wrong_shape, wrong_args, runtime, options, huge."""
    job: NewJob

    @property
    def never_due(self) -> bool:
        return self.job.run_at is not None and not self.job.run_at <= 1e11

    @property
    def valid(self) -> bool:
        return self.kind == "valid"


def _payload(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False)


def _huge(variant: int) -> str:
    """A payload for `work` of a huge or deep kind (all refused)."""
    if variant == 0:
        return '{"args": ["k", "' + "x" * (3 * MB) + '"]}'
    if variant == 1:
        return '{"args": [' + json.dumps(["x"] * 400_000) + ", 1]}"
    if variant == 2:
        return _payload({"args": ["k", 1], "kwargs": {f"k{n}": n for n in range(100_000)}})
    if variant == 3:
        return '{"args": ["k", 1' + "0" * 100_000 + "]}"
    if variant in (4, 5):
        depth = 800 if variant == 4 else 100_000
        return '{"args": [' + "[" * depth + "]" * depth + ", 1]}"
    return '{"args": ["k", 1], "kwargs": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}"


HUGE_VARIANTS = 7
KINDS = [
    "foreign",
    "not_json",
    "wrong_args",
    "huge",
    "wrong_shape",
    "runtime",
    "foreign",
    "options",
    "wrong_args",
    "not_json",
]
"""Hostile kinds in turn (each kind walks its own list in order, so that a small run
covers the head of every list)."""


class Hostile:
    """Hostile rows, each kind's values in turn."""

    def __init__(self, folder: Path) -> None:
        self._command = _payload({"args": [f"touch {folder}/pwned"]})
        self._kinds = itertools.cycle(KINDS)
        self._next: dict[str, Iterator[Any]] = {
            "foreign": itertools.cycle(FOREIGN),
            "not_json": itertools.cycle(NOT_JSON),
            "wrong_shape": itertools.cycle(WRONG_SHAPE),
            "wrong_args": itertools.cycle(WRONG_ARGS),
            "runtime": itertools.cycle(RUNTIME),
            "options": itertools.cycle(OPTIONS),
            "huge": itertools.cycle(range(HUGE_VARIANTS)),
        }

    def row(self) -> tuple[str, str, str, dict[str, Any]]:
        """(kind, function, payload, options) of the next hostile row."""
        kind = next(self._kinds)
        value = next(self._next[kind])
        if kind == "foreign":
            return kind, value, self._command, {}
        if kind == "wrong_args":
            return kind, WORK, _payload(value), {}
        if kind == "runtime":
            return kind, WORK, value, {"backoff_base": 0.05, "backoff_max": 0.2, "time_limit": 10}
        if kind == "options":
            return kind, WORK, _payload({"args": ["opt", 1]}), value
        if kind == "huge":
            return kind, WORK, _huge(value), {}
        return kind, WORK, value, {}


def fuzz(count: int, folder: Path, seed: int = 8) -> list[Row]:
    """`count` rows, about `VALID_SHARE` of them valid."""
    rng = random.Random(seed)
    hostile = Hostile(folder)
    rows = []
    options: dict[str, Any]
    for n in range(count):
        if rng.random() < VALID_SHARE:
            kind, function, options = "valid", WORK, {}
            payload = _payload({"args": [f"v{n}", rng.uniform(1, 5)]})
        else:
            kind, function, payload, options = hostile.row()
        runtime = kind in ("valid", "runtime")
        draw = rng.random()
        run_at = (
            rng.choice(NEVER_RUN_AT)
            if draw < 0.05
            else rng.choice(EXTREME_RUN_AT)
            if draw < 0.2
            else None
        )
        job = NewJob(
            id=new_task_id(),
            function=function,
            payload=payload,
            priority=rng.choice(EXTREME_PRIORITIES) if rng.random() < 0.15 else 0,
            run_at=run_at,
            max_attempts=rng.choice([1, 2, 3] if runtime else [0, -1, 1, 5, 2**31 - 1]),
        )
        rows.append(Row(kind, _with_options(job, options)))
    return rows


def _with_options(job: NewJob, options: dict[str, Any]) -> NewJob:
    """`job` with `options`: checked as `add_task` checks them, or, where they would be
    refused, set around that check (a row written by other code), for the store's own
    check at enqueue to refuse."""
    try:
        checked = StoredOptions(options)
    except InvalidOption:
        return job._replace(options=options)  # type: ignore[arg-type]
    return job._replace(options=checked)


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

    def __init__(self, url: str, folder: Path, ledger: Ledger, count: int) -> None:
        self.audit = folder / "audit.log"
        self.log = folder / "workers.log"
        self.library = folder / "lib"
        self.library.mkdir(exist_ok=True)
        (self.library / f"{LIBRARY}.py").write_text(LIBRARY_CODE)
        super().__init__(url, folder, ledger, count, ["--concurrency", "8"])

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "afterward", "worker", "faults.app:afterward"]
        with self.log.open("ab") as log:
            return subprocess.Popen(
                [*command, *self.args, "--log-level", "WARNING"],
                cwd=self.folder,
                env={
                    **self.env,
                    AUDIT_ENV: str(self.audit),
                    LIBRARY_ENV: LIBRARY,
                    "PYTHONPATH": os.pathsep.join([str(self.library), self.env["PYTHONPATH"]]),
                },
                stdout=subprocess.DEVNULL,
                stderr=log,
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


def valid_rows(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.valid]


def _key(row: Row) -> str:
    return str(json.loads(row.job.payload)["args"][0])
