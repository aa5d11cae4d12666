"""The PostgreSQL store: ``postgresql://user@host:5432/db?schema=name``, for many machines.

Every table lives in one schema (``schema``, default ``afterward``, created if missing);
the rest of the URL goes to psycopg. The pool lives on the event loop that uses the store
(`LoopBound`). Each write is one transaction, most
of them one statement (see ``sql/queries.sql``). New work is announced with
NOTIFY on the schema's channel and heard by a dedicated LISTEN connection (`Waker`).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from ...errors import StoreError, TaskNotFound
from ...jobs import Failure, Job, JobState, NewJob, check_new_jobs
from ..base import Counts, JobFilter
from ..binding import LoopBound, NotOpen
from ..rows import attempt_from_row, readable_job, state_or_failed
from .listen import Waker
from .migrate import migrate
from .queries import QUERIES
from .target import Target
from .transaction import (
    async_driver_connection,
    enqueue_in,
    enqueue_in_sync,
    sync_driver_connection,
)
from .vacuum import Vacuum
from .writes import (
    Conn,
    cancel_chain,
    check_idle,
    fail_params,
    insert_jobs,
    recover_leases,
    retry_chain,
    spoil_at_limit,
    take_jobs,
)

__all__ = ["PostgresStore"]

P = ParamSpec("P")
T = TypeVar("T")
Pool = AsyncConnectionPool[Conn]

_POOL_TIMEOUT = 10.0
"""Seconds to wait for a pooled connection (or for the first one, at open) before failing."""
_CLOSE_GRACE = 5.0
"""Seconds `close` lets operations under way finish before cancelling them."""


@dataclass
class _LoopConnections:
    """The pool and the wake-up listener."""

    pool: Pool
    waker: Waker


def _on_loop(
    method: Callable[Concatenate[PostgresStore, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[PostgresStore, P], Coroutine[Any, Any, T]]:
    """Run the method with the pool open; psycopg's errors become `StoreError`."""

    @functools.wraps(method)
    async def on_loop(self: PostgresStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await self._loops.run(functools.partial(method, self, *args, **kwargs))
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL store {self.url}: {exc}") from exc
        except NotOpen as exc:
            raise StoreError(str(exc)) from None

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
        self._max_connections = max_connections
        self._loops = LoopBound(
            f"the PostgreSQL store {self.url}",
            self._connect,
            self._disconnect,
            interrupt=self._interrupt,
            grace=_CLOSE_GRACE,
        )
        self._vacuum = Vacuum()

    # -- plumbing ---------------------------------------------------------------------

    def _live(self) -> tuple[Pool, Waker]:
        conns = self._loops.current()
        return conns.pool, conns.waker

    def _connection(self) -> AbstractAsyncContextManager[Conn]:
        return self._live()[0].connection()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Conn]:
        async with self._connection() as conn, conn.transaction():
            yield conn

    async def _one(self, query: str, params: Mapping[str, Any]) -> DictRow | None:
        async with self._connection() as conn:
            cur = await conn.execute(QUERIES[query], params)
            return await cur.fetchone()

    async def _all(self, query: str, params: Mapping[str, Any]) -> list[DictRow]:
        async with self._connection() as conn:
            cur = await conn.execute(QUERIES[query], params)
            return await cur.fetchall()

    # -- lifecycle --------------------------------------------------------------------

    async def open(self, *, create: bool = True) -> None:
        """Create or upgrade the schema (under an advisory lock, in one transaction) and
        open this loop's pool. Idempotent. With ``create=False`` a schema that does not
        exist is not created.

        :raises StoreError: the server cannot be reached or refused the migration, or
            there is no store and `create` is False.
        """
        if self._loops.is_open:
            return
        try:
            conn = await psycopg.AsyncConnection.connect(self._target.conninfo, autocommit=True)
            async with conn:
                await migrate(conn, self._target, create=create)
            self._loops.start()
            await self._loops.run(_nothing)
        except psycopg.Error as exc:
            await self._loops.close()
            raise StoreError(f"PostgreSQL store {self.url}: {exc}") from exc
        except BaseException:
            await self._loops.close()
            raise

    async def _connect(self) -> _LoopConnections:
        pool = Pool(
            self._target.conninfo,
            connection_class=Conn,
            kwargs={"autocommit": True, "row_factory": dict_row},
            min_size=1,
            max_size=self._max_connections,
            open=False,
            configure=self._configure,
            check=check_idle,
            timeout=_POOL_TIMEOUT,
            name=f"afterward-{self.schema}",
        )
        try:
            await pool.open(wait=True, timeout=_POOL_TIMEOUT)
        except BaseException:
            await pool.close()
            raise
        return _LoopConnections(pool, Waker(self._target))

    async def _configure(self, conn: Conn) -> None:
        await conn.execute(self._target.configure_session())

    @asynccontextmanager
    async def _own_connection(self) -> AsyncIterator[Conn]:
        """A connection outside the pools, closed after use (for a long `Vacuum`)."""
        conn = await Conn.connect(self._target.conninfo, autocommit=True, row_factory=dict_row)
        async with conn:
            await self._configure(conn)
            yield conn

    async def close(self) -> None:
        """Stop listening, let operations under way finish (a few seconds at most) and
        close the pool. Idempotent."""
        self._vacuum.cancel()
        await self._loops.close()

    @staticmethod
    async def _interrupt(conns: _LoopConnections) -> None:
        await conns.waker.close()

    @staticmethod
    async def _disconnect(conns: _LoopConnections) -> None:
        await conns.pool.close()

    @_on_loop
    async def now(self) -> float:
        """The database server's clock."""
        row = await self._one("now", {})
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
            async with self._transaction() as conn:
                ids, woken = await insert_jobs(conn, jobs, now, extra)
        else:
            async with self._connection() as conn:
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
        query, params = self._taking(worker, now, lease, limit, queues, ids)
        async with self._connection() as conn:
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
        query, params = self._taking(worker, now, lease, limit, queues, ids)
        params["relaxed"] = not attempts  # the completions' commit must reach the disk
        async with self._connection() as conn:
            both = functools.partial(self._both, conn, worker, attempts, now, query, params)
            try:
                done, rows = await both()
            except psycopg.errors.NumericValueOutOfRange:  # all rolled back: see take_jobs
                await spoil_at_limit(conn, now)
                done, rows = await both()
            jobs = await take_jobs(conn, query, params, worker, now, first=rows)
        self._woke(any(r["woken"] for r in done))
        return {r["id"] for r in done}, jobs

    async def _both(
        self,
        conn: Conn,
        worker: str,
        attempts: Sequence[tuple[str, int]],
        now: float,
        query: str,
        params: dict[str, Any],
    ) -> tuple[list[DictRow], list[DictRow]]:
        """Both statements in one transaction and one round trip: the completions' rows
        and the acquire's."""
        async with conn.pipeline(), conn.transaction():
            completing = None
            if attempts:
                completing = await conn.execute(
                    QUERIES["complete"], self._completing(worker, attempts, now)
                )
            taking = await conn.execute(QUERIES[query], params) if params["limit"] > 0 else None
        done = await completing.fetchall() if completing else []
        rows = await taking.fetchall() if taking else []
        return done, rows

    def _taking(
        self,
        worker: str,
        now: float,
        lease: float,
        limit: int,
        queues: Sequence[str] | None,
        ids: Sequence[str] | None,
    ) -> tuple[str, dict[str, Any]]:
        """The acquire statement and its parameters; a worker looking for any work
        listens for more from then on."""
        waker = self._live()[1]
        if ids is None:
            waker.start()
        waker.mark()
        params: dict[str, Any] = {"worker": worker, "now": now, "expires": now + lease}
        params.update(limit=limit, relaxed=True)
        if ids is not None:
            return "acquire_ids", {**params, "ids": list(ids)}
        return "acquire_due", {**params, "queues": None if queues is None else list(queues)}

    @_on_loop
    async def extend_leases(
        self, worker: str, ids: Sequence[str], *, now: float, lease: float
    ) -> set[str]:
        """One statement; the ids it returns are the leases still held."""
        params = {"worker": worker, "ids": list(ids), "now": now, "expires": now + lease}
        return {r["id"] for r in await self._all("extend_leases", params)}

    async def _complete(
        self, worker: str, attempts: Sequence[tuple[str, int]], now: float
    ) -> set[str]:
        """One statement: succeed, close the attempts, release the next tasks."""
        if not attempts:
            return set()
        rows = await self._all("complete", self._completing(worker, attempts, now))
        self._woke(any(r["woken"] for r in rows))
        return {r["id"] for r in rows}

    def _completing(
        self, worker: str, attempts: Sequence[tuple[str, int]], now: float
    ) -> dict[str, Any]:
        return {
            "ids": [job_id for job_id, _ in attempts],
            "attempts": [int(attempt) for _, attempt in attempts],
            "worker": worker,
            "now": now,
            "channel": self._target.channel,
        }

    @_on_loop
    async def fail(
        self, job_id: str, worker: str, attempt: int, failure: Failure, *, now: float
    ) -> bool:
        """One statement: record the failure, close the attempt."""
        channel = self._target.channel
        params = fail_params(job_id, worker, attempt, failure, now, channel, live=True)
        return self._changed(await self._one("fail", params))

    def _changed(self, row: DictRow | None) -> bool:
        """Whether a fenced write's row came back; note the work it woke up, if any."""
        if row is None:
            return False
        self._woke(bool(row["woken"]))
        return True

    def _woke(self, woken: bool) -> None:
        """Hint this store's waiter that work was made due (unless its NOTIFY comes back)."""
        if woken:
            waker = self._live()[1]
            if not waker.listening:
                waker.wrote()

    @_on_loop
    async def release(self, worker: str, ids: Sequence[str], *, now: float) -> int:
        """One statement: hand back, close the attempts, drop reservations."""
        params = {"worker": worker, "ids": list(ids), "now": now}
        row = await self._one("release", {**params, "channel": self._target.channel})
        assert row is not None
        self._changed(row)
        return int(row["handed"])

    @_on_loop
    async def lease_holders(self) -> list[str]:
        """Workers holding a lease or a reservation."""
        return [r["lease_owner"] for r in await self._all("lease_holders", {})]

    @_on_loop
    async def recover(self, *, now: float, dead_workers: Sequence[str] = ()) -> int:
        """One transaction; lost rows are locked (``SKIP LOCKED``) then failed. Also looks,
        every half minute, whether the tables need the vacuum autovacuum won't give them."""
        async with self._transaction() as conn:
            taken, woken = await recover_leases(conn, now, dead_workers, self._target.channel)
        self._woke(woken)
        self._vacuum.poke(self._own_connection)
        return taken

    # -- administration ---------------------------------------------------------------

    @_on_loop
    async def cancel(self, job_id: str, *, now: float) -> list[str]:
        """One transaction, with the task locked (``FOR UPDATE``)."""
        async with self._transaction() as conn:
            return await cancel_chain(conn, job_id, now)

    @_on_loop
    async def retry(self, job_id: str, *, now: float) -> None:
        """One transaction, with the task and its predecessor locked."""
        async with self._transaction() as conn:
            woken = await retry_chain(conn, job_id, now, self._target.channel)
        self._woke(woken)

    @_on_loop
    async def get(self, job_id: str) -> Job:
        """One statement: the task and its attempts (as JSON)."""
        row = await self._one("get_job", {"id": job_id})
        if row is None:
            raise TaskNotFound(job_id)
        return readable_job(row, (attempt_from_row(a) for a in row["history"]))

    @_on_loop
    async def list(self, where: JobFilter, *, limit: int = 50, offset: int = 0) -> list[Job]:
        """Newest first; ties by id, compared as bytes (as SQLite does)."""
        states = None if where.states is None else [JobState(s).value for s in where.states]
        params = {
            "states": states,
            "queue": where.queue,
            "function": where.function,
            "chain_id": where.chain_id,
            "id_prefix": where.id_prefix,
            "limit": limit,
            "offset": offset,
        }
        return [readable_job(r) for r in await self._all("list_jobs", params)]

    @_on_loop
    async def counts(self) -> Counts:
        """Tasks by (queue, state)."""
        counts: dict[tuple[str, JobState], int] = {}
        for r in await self._all("counts", {}):  # see `readable_job` for an unknown state
            key = (r["queue"], state_or_failed(r["state"]))
            counts[key] = counts.get(key, 0) + r["n"]
        return counts

    @_on_loop
    async def purge(self, *, states: Sequence[JobState], finished_before: float) -> int:
        """One statement deleting the tasks and their attempts."""
        params = {"states": [JobState(s).value for s in states], "before": finished_before}
        row = await self._one("purge", params)
        assert row is not None
        return int(row["n"])

    # -- waking -----------------------------------------------------------------------

    @_on_loop
    async def wait_for_work(self, timeout: float) -> None:
        """Return at a NOTIFY (or a write of this store) since the last `acquire`, or
        after `timeout` seconds; while the listener is down, just after `timeout`."""
        await self._live()[1].wait(timeout)


async def _nothing() -> None:
    """A call that only opens the calling loop's pool."""
