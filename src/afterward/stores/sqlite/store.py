"""The SQLite store: one file, WAL, `synchronous=FULL`; the embedded default.

Every operation is one ``BEGIN IMMEDIATE`` transaction on the store's connection
(`connection`), which SQLite serializes across processes: claims are atomic however
many processes share the file. This class is the façade: producing is in `enqueue`,
taking in `acquire`, outcomes in `outcomes`, recovery in `recovery`, inspection and
administration in `admin`, rows that cannot be read in `unreadable`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence

from ...jobs import Failure, Job, JobState, NewJob, check_new_jobs
from ..base import Counts, JobFilter
from . import admin, recovery
from .acquire import taking
from .connection import SQLiteConnection, path_from_url
from .enqueue import insert_jobs
from .outcomes import completing, extending, fail_attempt, releasing
from .unreadable import NotUtf8

__all__ = ["SQLiteStore"]

_WAKE_POLL_MIN = 0.001
_WAKE_POLL_MAX = 0.01
_WAKE_FAST_FOR = 0.1
"""While idle, look for commits (any process's) every 1 ms for the first 100 ms after the
last change seen, then slow by a quarter per empty look to every 10 ms: a look is one
in-memory `PRAGMA data_version`, a few microseconds. Work tends to come in bursts: a
worker that just saw some sees the next within a millisecond."""


class SQLiteStore:
    """Tasks in a SQLite file. `synchronous` is ``"FULL"`` (survives power loss) by default."""

    def __init__(self, url: str, *, synchronous: str = "FULL") -> None:
        self.url = url
        self.path = path_from_url(url)
        self._db = SQLiteConnection(self.path, synchronous=synchronous)
        self._seen = -1
        """The file's data version when this store last looked for due tasks."""
        self._seen_change_at = 0.0
        """When (monotonic) `wait_for_work` last saw the data version move."""

    # -- lifecycle --------------------------------------------------------------------

    async def open(self, *, create: bool = True) -> None:
        await self._db.open(create=create)

    async def close(self) -> None:
        await self._db.close()

    async def now(self) -> float:
        """This machine's clock: every process sharing the file runs on it."""
        return time.time()

    # -- producing --------------------------------------------------------------------

    async def enqueue(
        self,
        jobs: Sequence[NewJob],
        *,
        now: float,
        reserve_for: str | None = None,
        lease: float = 0.0,
    ) -> list[str]:
        check_new_jobs(jobs)

        def write(conn: sqlite3.Connection) -> list[str]:
            return insert_jobs(conn, jobs, now, reserve_for, now + lease)

        return await self._db.write(write)

    # -- consuming --------------------------------------------------------------------

    async def acquire(
        self,
        worker: str,
        *,
        now: float,
        lease: float,
        limit: int,
        queues: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[Job]:
        # Not fsynced on its own: after a power loss the task is simply due again.
        try:
            take = taking(worker, now, lease, limit, queues, ids, before=self._note_version)
            return await self._db.write(take, durable=False)
        except NotUtf8:  # rolled back; taken again reading such text leniently
            careful = taking(
                worker, now, lease, limit, queues, ids, careful=True, before=self._note_version
            )
            return await self._db.write(careful, durable=False)

    async def complete_and_acquire(
        self,
        worker: str,
        attempts: Sequence[tuple[str, int]],
        *,
        now: float,
        lease: float,
        limit: int,
        queues: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
    ) -> tuple[set[str], list[Job]]:
        """One write: the completions, then the acquire (which sees what they released)."""
        complete = completing(worker, attempts, now)
        if limit <= 0:
            return (await self._db.write(complete) if attempts else set()), []
        for careful in (False, True):
            take = taking(
                worker, now, lease, limit, queues, ids, careful=careful, before=self._note_version
            )

            def write(conn: sqlite3.Connection) -> tuple[set[str], list[Job]]:
                return complete(conn), take(conn)  # noqa: B023 (called before the next turn)

            try:
                return await self._db.write(write, durable=bool(attempts))
            except NotUtf8:  # rolled back, completions too: both again, carefully
                continue
        raise AssertionError("unreachable: a careful take never raises NotUtf8")

    def _note_version(self) -> None:
        """Called as an acquire looks: `wait_for_work` wakes for what comes after."""
        self._seen = self._db.data_version()

    async def extend_leases(
        self, worker: str, ids: Sequence[str], *, now: float, lease: float
    ) -> set[str]:
        return await self._db.write(extending(worker, ids, now, lease), durable=False)

    async def fail(
        self, job_id: str, worker: str, attempt: int, failure: Failure, *, now: float
    ) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            return fail_attempt(conn, job_id, worker, attempt, failure, now, live=True)

        return await self._db.write(write)

    async def release(self, worker: str, ids: Sequence[str], *, now: float) -> int:
        return await self._db.write(releasing(worker, ids, now))

    async def lease_holders(self) -> list[str]:
        return await self._db.call(recovery.lease_holders)

    async def recover(self, *, now: float, dead_workers: Sequence[str] = ()) -> int:
        return await self._db.write(recovery.recovering(now, dead_workers))

    # -- administration ---------------------------------------------------------------

    async def cancel(self, job_id: str, *, now: float) -> list[str]:
        return await self._db.write(admin.cancelling(job_id, now))

    async def retry(self, job_id: str, *, now: float) -> None:
        await self._db.write(admin.retrying(job_id, now))

    async def get(self, job_id: str) -> Job:
        return await self._db.call(lambda conn: admin.get_job(conn, job_id))

    async def list(self, where: JobFilter, *, limit: int = 50, offset: int = 0) -> list[Job]:
        return await self._db.call(admin.listing(where, limit, offset))

    async def counts(self) -> Counts:
        return await self._db.call(admin.count)

    async def purge(self, *, states: Sequence[JobState], finished_before: float) -> int:
        return await self._db.write(admin.purging(states, finished_before))

    # -- waking -----------------------------------------------------------------------

    async def wait_for_work(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        interval = _WAKE_POLL_MIN
        while True:
            seen = self._db.data_version()
            now = time.monotonic()
            if seen != self._seen:
                self._seen, self._seen_change_at = seen, now
                return
            left = deadline - now
            if left <= 0:
                return
            await asyncio.sleep(min(interval, left))
            if now - self._seen_change_at > _WAKE_FAST_FOR:
                interval = min(interval * 1.25, _WAKE_POLL_MAX)
