"""Poison tasks: a segfault, `os._exit`, a memory hog and an endless plain-function loop,
mixed into normal tasks, through one supervised worker pool
(``afterward worker --processes N --max-memory 512M``).

The normal tasks arrive in rounds, one poison task with each round. Each poison task must
end `failed` after exactly its max attempts, its last error naming its cause (the worker
died; MemoryError; the time limit); every normal task must succeed; and the pool must keep
its capacity: the supervisor restarts crashed and retired processes, N worker processes are
alive at the end, and a probe of N x concurrency tasks of 1.5 s then runs in one wave (a
missing process or a stuck thread would push some of them into a second wave).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import random
import re
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

from afterward import Afterward, Job, JobState
from afterward.stores import JobFilter

from .. import app
from ..harness import Fleet, Result, enqueue, store_url, wait_finished
from ..ledger import Ledger
from ..sizes import Size

NAME = "7 poison tasks"
CONCURRENCY = 8
MAX_MEMORY = "512M"
ROUND_SECONDS = 2.0
"""Seconds between rounds of normal tasks (each round brings one poison task)."""
PROBE_SECONDS = 1.5
SETTLE_SECONDS = 2.5
"""A worker process counts as ready once it has been alive this long."""

DIED = "WorkerLost: the worker running it died"
POISON = {
    "hog": (app.hog, "MemoryError"),
    "segfault": (app.segfault, DIED),
    "spin": (app.spin, "TimeLimitExceeded"),
    "hard_exit": (app.hard_exit, DIED),
}
"""Kind → (task, how its last error starts)."""
CRASHES = ("SIGSEGV", "exit 3")
"""How a process that a segfault or `os._exit` task ran in ends (see `_kind_of_end`)."""

_ENDED = re.compile(
    r"^(\S+ \S+) WARNING afterward.worker worker process (\d+) ended \((.*)\); starting another"
)
Call = tuple[Any, tuple[Any, ...]]


class SupervisedPool(Fleet):
    """One ``afterward worker --processes N`` supervisor; its log is kept in `log`."""

    log: Path

    def __init__(self, url: str, folder: Path, ledger: Ledger, args: list[str]) -> None:
        super().__init__(url, folder, ledger, 1, args, log=folder / "supervisor.log")

    def workers(self) -> dict[int, float]:
        """Live worker processes (children of the supervisor) → seconds each has run."""
        return _children(self.procs[0].pid)

    def ended(self) -> list[tuple[int, float, str]]:
        """(pid, when, why) of each worker process that ended, from the supervisor's log."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if match := _ENDED.match(line):
                at = dt.datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                found.append((int(match[2]), at, match[3]))
        return found


def _children(parent: int) -> dict[int, float]:
    """Live (not zombie) children of `parent` → seconds since each started."""
    ticks = os.sysconf("SC_CLK_TCK")
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[1]) == parent:
            found[int(stat.parent.name)] = uptime - int(fields[19]) / ticks
    return found


def _wait_ready(pool: SupervisedPool, count: int, timeout: float = 60) -> None:
    """Wait until `count` worker processes have each run for `SETTLE_SECONDS`."""
    deadline = time.monotonic() + timeout
    while True:
        ages = pool.workers()
        if len(ages) == count and min(ages.values()) >= SETTLE_SECONDS:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"worker processes {ages} not ready after {timeout:.0f} s")
        time.sleep(0.2)


def _rounds(size: Size) -> list[list[Call]]:
    """Normal tasks of 1-20 ms in rounds, one poison task per round: the crashing kinds
    first, in turn, then the others. A crash would also clear a stuck thread (its process
    goes), so the pool the capacity probe finds at the end is the one hogs and endless
    loops left."""
    rng = random.Random(7)
    crashing = [kind for kind, (_, cause) in POISON.items() if cause == DIED]
    others = [kind for kind in POISON if kind not in crashing]
    poison: list[Call] = [
        (POISON[kind][0], (f"{kind}{n}",))
        for group in (crashing, others)
        for n in range(size.poison_each)
        for kind in group
    ]
    normal: list[Call] = [
        (app.work, (f"t{n}", rng.uniform(1, 20))) for n in range(size.poison_normal)
    ]
    per_round = -(-len(normal) // len(poison))
    return [[*normal[i * per_round : (i + 1) * per_round], one] for i, one in enumerate(poison)]


def _probe(url: str, ledger: Ledger, slots: int) -> float:
    """Run `slots` tasks of `PROBE_SECONDS` at once; return how far apart they ended."""
    calls = [(app.work, (f"probe{n}", PROBE_SECONDS * 1000)) for n in range(slots)]
    total = asyncio.run(enqueue(url, calls))
    deadline = time.monotonic() + 60
    while sum(1 for key in ledger.runs() if key.startswith("probe")) < total:
        if time.monotonic() > deadline:
            raise TimeoutError("the capacity probe did not finish in 60 s")
        time.sleep(0.1)
    conn = sqlite3.connect(ledger.path, timeout=60)
    try:
        query = "SELECT max(at) - min(at) FROM runs WHERE key LIKE 'probe%'"
        (spread,) = conn.execute(query).fetchone()
    finally:
        conn.close()
    return float(spread)


async def _stored(url: str) -> tuple[dict[str, list[Job]], list[str]]:
    """Kind → the poison tasks of that kind (with their attempts); and the normal tasks
    that did not succeed, with their last error."""
    afterward = Afterward(url=url, execution="workers")
    poison: dict[str, list[Job]] = {kind: [] for kind in POISON}
    try:
        await afterward.open()
        for kind, (func, _) in POISON.items():
            where = JobFilter(function=f"faults.app:{func.__name__}")
            for summary in await afterward.store.list(where, limit=1_000_000):
                poison[kind].append(await afterward.store.get(summary.id))
        normal = await afterward.store.list(JobFilter(function="faults.app:work"), limit=10**7)
    finally:
        await afterward.aclose()
    unfinished = [
        f"{j.id} {j.state.value}: {j.last_error}"
        for j in normal
        if j.state is not JobState.SUCCEEDED
    ]
    return poison, unfinished


class PoisonVerdict:
    """What the stored poison tasks show.

    A hog or spin attempt running in a process that a segfault or `os._exit` task kills is
    lost with it: then the worker's death is rightly its error (collateral). So each task's
    last error must be its own cause or such a collateral death, and each kind must have
    failed with its own cause in at least one attempt (all three attempts of one task may
    be collateral: a spin attempt lasts its 0.5 s time limit, crashes come every second or two).
    """

    def __init__(self, jobs: dict[str, list[Job]], each: int, crashed: set[int]) -> None:
        self.exact = True
        """Every poison task failed after running exactly its max attempts (attempts
        handed back unrun, which give the budget back, do not count)."""
        self.causes = True
        """Every last error is the task's own cause or a collateral death."""
        self.own_cause_seen = True
        """Every kind failed with its own cause in at least one attempt."""
        self.collateral = 0
        self.handed_back = 0
        """Attempts handed back unrun (a worker runs one suspect at a time)."""
        self.own: dict[str, int] = {}
        """Kind → attempts that failed with the kind's own cause."""
        self.wrong: list[str] = []
        for kind, found in jobs.items():
            if len(found) != each:
                self.exact = False
                self.wrong.append(f"{kind}: {len(found)} stored, {each} expected")
            for job in found:
                self._judge(kind, job, crashed)
            cause = POISON[kind][1]
            self.own[kind] = sum(
                1 for j in found for a in j.history if (a.error or "").startswith(cause)
            )
            if not self.own[kind]:
                self.own_cause_seen = False
                self.wrong.append(f"{kind}: no attempt failed with {cause}")

    def _judge(self, kind: str, job: Job, crashed: set[int]) -> None:
        cause = POISON[kind][1]
        ran = sum(1 for attempt in job.history if attempt.outcome != "released")
        self.handed_back += len(job.history) - ran
        if job.state is not JobState.FAILED or ran != job.options["max_attempts"]:
            self.exact = False
            self.wrong.append(f"{kind} {job.id}: {job.state.value} after {ran} attempts")
        error = job.last_error or ""
        if error.startswith(cause):
            return
        if error.startswith(DIED) and _pid(job.history[-1].worker) in crashed:
            self.collateral += 1
            return
        self.causes = False
        self.wrong.append(f"{kind} {job.id}: last error {error!r}")


async def _recovery(url: str, died: dict[int, float]) -> list[float]:
    """For each attempt lost in a worker process that died: seconds from the death to the
    task's next start. The death is taken as the earlier of the supervisor noticing it (it
    looks every 0.2 s) and another worker marking the attempt lost."""
    afterward = Afterward(url=url, execution="workers")
    found: list[float] = []
    try:
        await afterward.open()
        for summary in await afterward.store.list(JobFilter(), limit=10**7):
            if summary.attempts < 2:
                continue
            job = await afterward.store.get(summary.id)
            ran = [a for a in job.history if a.outcome != "released"]
            for lost, after in itertools.pairwise(ran):
                pid = _pid(lost.worker)
                if lost.outcome == "lost" and pid in died:
                    death = min(died[pid], lost.finished_at or died[pid])
                    found.append(after.started_at - death)
    finally:
        await afterward.aclose()
    return found


def _pid(worker: str) -> int:
    """The process id in a worker identity (``host/pid/token``)."""
    parts = worker.rsplit("/", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else -1


def _kind_of_end(reason: str) -> str:
    """``SIGSEGV``, ``exit 3``, ``retired``… from the supervisor's "ended (...)"."""
    if "retired" in reason:
        return "retired"
    if reason.startswith("killed by "):
        return reason.removeprefix("killed by ")
    return reason.replace("exit code ", "exit ")


def run(kind: str, folder: Path, size: Size) -> tuple[Result, list[str]]:
    """Run the poison mix through a supervised pool; return the result and the store URL."""
    folder.mkdir(parents=True, exist_ok=True)
    url = store_url(kind, folder)
    ledger = Ledger(folder / "ledger.db")
    args = ["--processes", str(size.workers), "--concurrency", str(CONCURRENCY)]
    pool = SupervisedPool(url, folder, ledger, [*args, "--max-memory", MAX_MEMORY])
    slots = size.workers * CONCURRENCY
    try:
        _wait_ready(pool, size.workers)
        started = time.monotonic()
        total = 0
        for calls in _rounds(size):
            total += asyncio.run(enqueue(url, calls))
            time.sleep(ROUND_SECONDS)
        wait_finished(url, total, timeout=120 + size.poison_normal / 20)
        seconds = time.monotonic() - started
        _wait_ready(pool, size.workers)
        live = len(pool.workers())
        spread = _probe(url, ledger, slots)
    finally:
        codes = pool.stop()
    ended = pool.ended()
    why = {pid: _kind_of_end(reason) for pid, _, reason in ended}
    ends = Counter(why.values())
    jobs, unfinished = asyncio.run(_stored(url))
    verdict = PoisonVerdict(
        jobs, size.poison_each, {pid for pid, end in why.items() if end in CRASHES}
    )
    runs = ledger.runs()
    normal = [f"t{n}" for n in range(size.poison_normal)] + [f"probe{n}" for n in range(slots)]
    wrong = verdict.wrong + unfinished
    result = Result(
        experiment=NAME,
        store=kind,
        accepted=total + slots,
        lost=sum(1 for key in normal if runs[key] == 0),
        twice=sum(1 for key in normal if runs[key] > 1),
        seconds=seconds,
        recovery=asyncio.run(_recovery(url, {pid: at for pid, at, _ in ended})),
        checks={
            "normal tasks succeeded 100 %": not unfinished,
            "poison failed after exactly max attempts": verdict.exact,
            "poison last error: its cause or a neighbour's crash": verdict.causes,
            "each kind failed with its own cause": verdict.own_cause_seen,
            "crashed workers restarted": all(ends[end] for end in CRASHES),
            "stuck-thread workers retired (exit 75)": ends["retired"] > 0,
            f"{size.workers} worker processes alive after": live == size.workers,
            f"probe: {slots} x {PROBE_SECONDS} s tasks in one wave": spread < PROBE_SECONDS * 2 / 3,
            "supervisor stopped cleanly": codes == [0],
        },
        notes=(
            f"worker processes ended: {dict(ends)}; attempts failed with their own cause: "
            f"{verdict.own}; poison attempts handed back unrun: {verdict.handed_back}; "
            f"poison tasks whose last attempt died in "
            f"another's crash: {verdict.collateral}; probe spread {spread:.2f} s; the mix "
            f"took {seconds:.1f} s" + (f"; wrong: {wrong[:5]}" if wrong else "")
        ),
    )
    return result, [url]
