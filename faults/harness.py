"""What experiments share: store URLs, worker fleets, enqueueing, counting, the table."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from afterward import Afterward, Job, JobState
from afterward.stores import JobFilter

from .ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL = os.environ.get("AFTERWARD_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
REDIS_URL = os.environ.get("AFTERWARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
STORES = ("sqlite", "postgres", "redis")
TERMINAL = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


def _with_query(url: str, name: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{name}={value}"


def store_url(kind: str, folder: Path) -> str:
    """A fresh, empty store of `kind` for one experiment run."""
    name = f"aw_fault_{uuid.uuid4().hex[:10]}"
    if kind == "sqlite":
        return f"sqlite:///{folder / 'store.db'}"
    if kind == "postgres":
        return _with_query(POSTGRES_URL, "schema", name)
    if kind == "redis":
        return _with_query(REDIS_URL, "prefix", name)
    raise ValueError(f"unknown store {kind!r}")


def drop_store(url: str) -> None:
    """Remove what a run created on a shared server (its schema or keys)."""
    base, _, query = url.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
    if url.startswith("postgres"):
        import psycopg
        from psycopg import sql

        with psycopg.connect(base, autocommit=True) as conn:
            statement = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
            conn.execute(statement.format(sql.Identifier(params["schema"])))
    elif url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(base)
        batch: list[bytes] = []
        # In chunks, as SCAN hands them over: one DEL of a million-task run's ~2 million
        # keys outran the client's socket timeout.
        for key in client.scan_iter(match=f"{params['prefix']}:*", count=1000):
            batch.append(key)
            if len(batch) >= 5000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
        client.close()


def store_kind(url: str) -> str:
    """``sqlite``, ``postgres`` or ``redis``."""
    scheme = url.partition(":")[0]
    return "postgres" if scheme.startswith("postgres") else scheme


class Fleet:
    """`count` worker processes (``afterward worker <target>``) on one store. With `log`,
    their warnings go to that file; `paths` come first on their import path."""

    def __init__(
        self,
        url: str,
        folder: Path,
        ledger: Ledger,
        count: int,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        target: str = "faults.app:afterward",
        log: Path | None = None,
        paths: Sequence[Path] = (),
    ) -> None:
        self.url = url
        self.target = target
        self.folder = folder
        self.log = log
        self.env = {
            **os.environ,
            **ledger.env(),
            **(env or {}),
            "AFTERWARD_URL": url,
            "PYTHONPATH": os.pathsep.join(
                [*map(str, paths), str(ROOT), os.environ.get("PYTHONPATH", "")]
            ),
        }
        self.args = list(args)
        self.procs: list[subprocess.Popen[bytes]] = [self._spawn() for _ in range(count)]
        self.kills: dict[int, float] = {}
        """pid → when it was killed (time.time())."""

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "afterward", "worker", self.target]
        if self.log is None:
            return subprocess.Popen(
                [*command, "--log-level", "ERROR", *self.args],
                cwd=self.folder,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        with self.log.open("ab") as log:
            return subprocess.Popen(
                [*command, *self.args, "--log-level", "WARNING"],
                cwd=self.folder,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def kill(self, index: int, sig: int = signal.SIGKILL) -> int:
        """Send `sig` to worker `index` (SIGKILL: and reap it); return its pid."""
        proc = self.procs[index]
        proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self.kills[proc.pid] = time.time()
            proc.wait(30)
        return proc.pid

    def replace(self, index: int) -> None:
        """Start a new worker in place of `index` (a supervisor would)."""
        self.procs[index] = self._spawn()

    def kill_random(self, rng: random.Random) -> int:
        """SIGKILL a random worker and start another in its place."""
        index = rng.randrange(len(self.procs))
        pid = self.kill(index)
        self.replace(index)
        return pid

    def stop(self, grace: float = 30.0) -> list[int | None]:
        """SIGTERM every worker and wait; return their exit codes."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(grace + 10))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
        return codes


async def enqueue(url: str, calls: Iterable[tuple[Callable[..., Any], tuple[Any, ...]]]) -> int:
    """Enqueue each ``(function, args)`` as its own task, in batches; return how many."""
    afterward = Afterward(url=url, execution="workers")
    total = 0
    try:
        batch = []
        for func, args in calls:
            batch.append(afterward.prepare(func, args, {}))
            if len(batch) == 200:
                total += await _store_batch(afterward, batch)
                batch = []
        if batch:
            total += await _store_batch(afterward, batch)
    finally:
        await afterward.aclose()
    return total


async def _store_batch(afterward: Afterward, batch: list[Any]) -> int:
    await afterward.open()
    return len(await afterward.store.enqueue(batch, now=time.time()))


async def states(url: str) -> dict[JobState, int]:
    """Number of tasks in each state."""
    afterward = Afterward(url=url, execution="workers")
    try:
        await afterward.open()
        counts = await afterward.store.counts()
    finally:
        await afterward.aclose()
    totals: dict[JobState, int] = {}
    for (_, state), n in counts.items():
        totals[state] = totals.get(state, 0) + n
    return totals


def wait_finished(url: str, total: int, timeout: float) -> float:
    """Wait until `total` tasks are in a terminal state; return the seconds it took."""
    start = time.monotonic()
    while True:
        finished = sum(n for s, n in asyncio.run(states(url)).items() if s in TERMINAL)
        if finished >= total:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{finished}/{total} tasks finished after {timeout:.0f} s")
        time.sleep(0.2)


async def jobs_with_history(url: str) -> list[Job]:
    """Every task with its attempts."""
    afterward = Afterward(url=url, execution="workers")
    try:
        await afterward.open()
        found = await afterward.store.list(JobFilter(), limit=1_000_000)
        return [await afterward.store.get(job.id) for job in found]
    finally:
        await afterward.aclose()


def pid_of(worker_id: str) -> int:
    """The process id in a worker id (``host/pid/token``), or -1."""
    parts = worker_id.rsplit("/", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else -1


async def recovery_times(url: str, kills: dict[int, float]) -> list[float]:
    """For each attempt lost with a killed worker: seconds from the kill until the store
    took the task back (queued again for any worker)."""
    afterward = Afterward(url=url, execution="workers")
    found: list[float] = []
    try:
        await afterward.open()
        for summary in await afterward.store.list(JobFilter(), limit=1_000_000):
            if summary.attempts < 2:
                continue
            job = await afterward.store.get(summary.id)
            for lost in job.history:
                pid = pid_of(lost.worker)
                if lost.outcome == "lost" and pid in kills and lost.finished_at is not None:
                    found.append(lost.finished_at - kills[pid])
    finally:
        await afterward.aclose()
    return found


@dataclass
class Result:
    """One experiment on one store."""

    experiment: str
    store: str
    accepted: int
    lost: int
    twice: int
    seconds: float
    recovery: list[float] = field(default_factory=list)
    baseline_seconds: float | None = None
    checks: dict[str, bool] = field(default_factory=dict)
    """Experiment-specific pass/fail facts, e.g. ``{"stale writes accepted = 0": True}``."""
    notes: str = ""

    @property
    def ok(self) -> bool:
        """Nothing lost and every specific check held."""
        return self.lost == 0 and all(self.checks.values())

    def recovery_text(self) -> str:
        if not self.recovery:
            return "-"
        ordered = sorted(self.recovery)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return f"{statistics.median(ordered):.2f} / {p99:.2f} / {ordered[-1]:.2f}"

    def throughput_text(self) -> str:
        if not self.baseline_seconds or not self.seconds:
            return "-"
        return f"{self.baseline_seconds / self.seconds:.0%}"


def table(results: Sequence[Result]) -> Table:
    """The results as a table a person reads."""
    out = Table(title="afterward fault suite")
    for column in (
        "experiment",
        "store",
        "accepted",
        "lost",
        "ran >1",
        "recovery s p50/p99/max",
        "throughput vs fault-free",
        "checks",
        "result",
    ):
        out.add_column(column, overflow="fold")
    for r in results:
        checks = "; ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in r.checks.items())
        out.add_row(
            r.experiment,
            r.store,
            str(r.accepted),
            str(r.lost),
            str(r.twice),
            r.recovery_text(),
            r.throughput_text(),
            checks or "-",
            "[green]ok[/]" if r.ok else "[bold red]FAILED[/]",
        )
    return out


def markdown(results: Sequence[Result]) -> str:
    """The results as a Markdown table (for docs/reliability.md)."""
    head = (
        "| experiment | store | accepted | lost | ran >1 | recovery s p50/p99/max "
        "| throughput vs fault-free | checks | notes | result |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in results:
        checks = "; ".join(f"{name}: {'yes' if ok else '**NO**'}" for name, ok in r.checks.items())
        cells = [
            r.experiment,
            r.store,
            str(r.accepted),
            str(r.lost),
            str(r.twice),
            r.recovery_text(),
            r.throughput_text(),
            checks or "-",
            r.notes or "-",
            "ok" if r.ok else "**FAILED**",
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def show(results: Sequence[Result]) -> None:
    """Print the table."""
    Console(width=200).print(table(results))
