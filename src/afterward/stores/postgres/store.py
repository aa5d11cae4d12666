"""The PostgreSQL store: ``postgresql://user@host:5432/db?schema=name``, for many machines.

Every table lives in one schema (``schema``, default ``afterward``, created if missing);
the rest of the URL goes to psycopg. The pool lives on the event loop that uses the store
(`LoopBound`). Each write is one transaction, most
of them one statement (see ``sql/queries.sql``). New work is announced with
NOTIFY on the schema's channel and heard by a dedicated LISTEN connection (`Waker`).

This class is the façade: the pools, the listener and opening (after migrating) are in
`connections`; the acquire, and the completions sent with it, in `acquire`; inspection
and purging in `admin`; the writes that need Python between statements in `writes`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from psycopg.rows import DictRow

from ...jobs import Failure, Job, JobState, NewJob, check_new_jobs
from ..base import Counts, JobFilter
from . import admin
from .acquire import complete_and_take, completion_params, taking
from .connections import Connections
from .target import Target
from .transaction import (
    async_driver_connection,
    enqueue_in,
    enqueue_in_sync,
    sync_driver_connection,
)
from .vacuum import Vacuum
from .writes import (
    cancel_chain,
    fail_params,
    insert_jobs,
    recover_leases,
    retry_chain,
    take_jobs,
)

__all__ = ["PostgresStore"]

P = ParamSpec("P")
T = TypeVar("T")


def _on_loop(
    method: Callable[Concatenate[PostgresStore, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[PostgresStore, P], Coroutine[Any, Any, T]]:
    """Run the method with the pool open; psycopg's errors become `StoreError`."""

    @functools.wraps(method)
    async def on_loop(self: PostgresStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._db.run(functools.partial(method, self, *args, **kwargs))

    return on_loop


class PostgresStore:
    """Tasks in a PostgreSQL schema (see the module). Keeps, per event loop using it, a
    pool of 1 to `max_connections` connections, plus one listening connection once it
    waits for work."""

    def __init__(self, url: str, *, max_connections: int = 10) -> None:
        self._target = Target.from_url(url)
        self.url = self._target.url
        self.schema = self._target.schema
        """The schema holding the store's tables."""
        self._db = Connections(self._target, max_connections)
        self._vacuum = Vacuum()

    # -- lifecycle --------------------------------------------------------------------

    async def open(self, *, create: bool = True) -> None:
        """Create or upgrade the schema (under an advisory lock, in one transaction) and
        open this loop's pool. Idempotent. With ``create=False`` a schema that does not
        exist is not created.

        :raises StoreError: the server cannot be reached or refused the migration, or
            there is no store and `create` is False.
        """
        await self._db.open(create=create)

    async def close(self) -> None:
        """Stop listening, let operations under way finish (a few seconds at most) and
        close the pool. Idempotent."""
        self._vacuum.cancel()
        await self._db.close()

    @_on_loop
    async def now(self) -> float:
        """The database server's clock."""
        row = await self._db.one("now", {})
        assert row is not None
        return float(row["now"])

    # -- producing --------------------------------------------------------------------

    @_on_loop
    async def enqueue(
        self,
        jobs: Sequence[NewJob],
        *,
        now: float,
        reserve_for: str | None = None,
        lease: float = 0.0,
    ) -> list[str]:
        """One statement (in autocommit) unless a unique key is involved: then a
        transaction that looks up the tasks holding the keys."""
        check_new_jobs(jobs)
        if not jobs:
            return []
        extra = {
            "lease_owner": reserve_for,
            "lease_expires_at": now + lease if reserve_for else None,
            "now": now,
            "channel": self._target.channel,
        }
        if any(job.unique_key is not None for job in jobs):
            async with self._db.transaction() as conn:
                ids, woken = await insert_jobs(conn, jobs, now, extra)
        else:
            async with self._db.connection() as conn:
                ids, woken = await insert_jobs(conn, jobs, now, extra)
        self._woke(woken)
        return ids

    async def enqueue_in(
        self, transaction: Any, jobs: Sequence[NewJob], *, now: float
    ) -> list[str]:
        """Enqueue inside the caller's open transaction, on the caller's own connection
        (psycopg `AsyncConnection`, SQLAlchemy `AsyncSession`/`AsyncConnection`), on the
        caller's event loop. The tasks commit or roll back with it; workers are woken at
        its commit."""
        conn = await async_driver_connection(transaction)
        return await enqueue_in(conn, self._target, jobs, now)

    def enqueue_in_sync(self, transaction: Any, jobs: Sequence[NewJob], *, now: float) -> list[str]:
        """`enqueue_in` for synchronous code: psycopg `Connection`, SQLAlchemy
        `Session`/`Connection`."""
        conn = sync_driver_connection(transaction)
        return enqueue_in_sync(conn, self._target, jobs, now)

    # -- consuming --------------------------------------------------------------------

    @_on_loop
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
        """One statement: lock due rows (``FOR UPDATE SKIP LOCKED``), take them, open
        their attempts. A worker looking for any work listens for more from then on."""
        query, params = taking(self._db.waker(), worker, now, lease, limit, queues, ids)
        async with self._db.connection() as conn:
            return await take_jobs(conn, query, params, worker, now)

    @_on_loop
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
        """The completion and acquire statements in one transaction, sent in one round
        trip (pipeline mode): one commit, and the acquire sees what the completions
        released."""
        if limit <= 0:
            return await self._complete(worker, attempts, now), []
        query, params = taking(self._db.waker(), worker, now, lease, limit, queues, ids)
        params["relaxed"] = not attempts  # the completions' commit must reach the disk
        completing = self._completing(worker, attempts, now) if attempts else None
        async with self._db.connection() as conn:
            done, jobs = await complete_and_take(conn, completing, query, params, worker, now)
        self._woke(any(r["woken"] for r in done))
        return {r["id"] for r in done}, jobs

    @_on_loop
    async def extend_leases(
        self, worker: str, ids: Sequence[str], *, now: float, lease: float
    ) -> set[str]:
        """One statement; the ids it returns are the leases still held."""
        params = {"worker": worker, "ids": list(ids), "now": now, "expires": now + lease}
        return {r["id"] for r in await self._db.all("extend_leases", params)}

    async def _complete(
        self, worker: str, attempts: Sequence[tuple[str, int]], now: float
    ) -> set[str]:
        """One statement: succeed, close the attempts, release the next tasks."""
        if not attempts:
            return set()
        rows = await self._db.all("complete", self._completing(worker, attempts, now))
        self._woke(any(r["woken"] for r in rows))
        return {r["id"] for r in rows}

    def _completing(
        self, worker: str, attempts: Sequence[tuple[str, int]], now: float
    ) -> dict[str, Any]:
        return completion_params(worker, attempts, now, self._target.channel)

    @_on_loop
    async def fail(
        self, job_id: str, worker: str, attempt: int, failure: Failure, *, now: float
    ) -> bool:
        """One statement: record the failure, close the attempt."""
        channel = self._target.channel
        params = fail_params(job_id, worker, attempt, failure, now, channel, live=True)
        return self._changed(await self._db.one("fail", params))

    def _changed(self, row: DictRow | None) -> bool:
        """Whether a fenced write's row came back; note the work it woke up, if any."""
        if row is None:
            return False
        self._woke(bool(row["woken"]))
        return True

    def _woke(self, woken: bool) -> None:
        """Hint this store's waiter that work was made due (unless its NOTIFY comes back)."""
        if woken:
            waker = self._db.waker()
            if not waker.listening:
                waker.wrote()

    @_on_loop
    async def release(self, worker: str, ids: Sequence[str], *, now: float) -> int:
        """One statement: hand back, close the attempts, drop reservations."""
        params = {"worker": worker, "ids": list(ids), "now": now}
        row = await self._db.one("release", {**params, "channel": self._target.channel})
        assert row is not None
        self._changed(row)
        return int(row["handed"])

    @_on_loop
    async def lease_holders(self) -> list[str]:
        """Workers holding a lease or a reservation."""
        return [r["lease_owner"] for r in await self._db.all("lease_holders", {})]

    @_on_loop
    async def recover(self, *, now: float, dead_workers: Sequence[str] = ()) -> int:
        """One transaction; lost rows are locked (``SKIP LOCKED``) then failed. Also looks,
        every half minute, whether the tables need the vacuum autovacuum won't give them."""
        async with self._db.transaction() as conn:
            taken, woken = await recover_leases(conn, now, dead_workers, self._target.channel)
        self._woke(woken)
        self._vacuum.poke(self._db.own_connection)
        return taken

    # -- administration ---------------------------------------------------------------

    @_on_loop
    async def cancel(self, job_id: str, *, now: float) -> list[str]:
        """One transaction, with the task locked (``FOR UPDATE``)."""
        async with self._db.transaction() as conn:
            return await cancel_chain(conn, job_id, now)

    @_on_loop
    async def retry(self, job_id: str, *, now: float) -> None:
        """One transaction, with the task and its predecessor locked."""
        async with self._db.transaction() as conn:
            woken = await retry_chain(conn, job_id, now, self._target.channel)
        self._woke(woken)

    @_on_loop
    async def get(self, job_id: str) -> Job:
        async with self._db.connection() as conn:
            return await admin.get_job(conn, job_id)

    @_on_loop
    async def list(self, where: JobFilter, *, limit: int = 50, offset: int = 0) -> list[Job]:
        async with self._db.connection() as conn:
            return await admin.list_jobs(conn, where, limit, offset)

    @_on_loop
    async def counts(self) -> Counts:
        async with self._db.connection() as conn:
            return await admin.count(conn)

    @_on_loop
    async def purge(self, *, states: Sequence[JobState], finished_before: float) -> int:
        async with self._db.connection() as conn:
            return await admin.purge(conn, states, finished_before)

    # -- waking -----------------------------------------------------------------------

    @_on_loop
    async def wait_for_work(self, timeout: float) -> None:
        """Return at a NOTIFY (or a write of this store) since the last `acquire`, or
        after `timeout` seconds; while the listener is down, just after `timeout`."""
        await self._db.waker().wait(timeout)
