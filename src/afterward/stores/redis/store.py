"""The Redis store (Redis 6.2+ or Valkey): ``redis://host:6379/0?prefix=afterward``.

Every change of state is one Lua script (``lua/<name>.lua``, with the helpers of
``lua/_lib.lua``), so it is atomic however many processes share the server; scripts are
loaded once per client and re-sent on NOSCRIPT (after a ``SCRIPT FLUSH`` or a restart).
Times are the callers' ``now``, passed to the scripts as exact decimal strings.

Key layout (``P`` is the ``prefix`` URL option, ``afterward`` by default)::

    P:schema                 string  layout version (1)
    P:job:<id>               hash    the task: one field per column of the SQLite table;
                                     a NULL column is an absent field; the hash is the truth
    P:attempts:<id>          hash    attempt number → JSON record of that attempt
    P:ready:<prio>:<queue>   zset    queued + scheduled tasks of one queue and priority,
                                     score run_at (members sort by id on equal scores)
    P:lanes                  zset    "<prio>:<queue>" of each non-empty ready set, score prio
    P:running                zset    running tasks, score lease_expires_at
    P:reserved               zset    unstarted tasks with a lease_owner (a reservation, live
                                     or expired), score lease_expires_at
    P:finished:<state>       zset    succeeded / failed / cancelled tasks, score finished_at
    P:created                zset    every task, score created_at (for listing)
    P:unique                 hash    unique_key → id of the unfinished task holding it
    P:counts                 hash    "<state>:<queue>" → number of tasks
    P:wake                   list    wake-up tokens (at most 32) for `wait_for_work`

Acquiring walks the lanes from the highest priority down; within one priority it merges
the due heads (score <= now) of the lanes of the wanted queues by (run_at, id), skipping
tasks under someone's live reservation. A script that makes work due pushes one token per
newly due task onto ``P:wake``; `wait_for_work` BLPOPs it on a connection of its own, so a
token pushed between an acquire and the wait is still there when the wait starts.

redis-py's asyncio pools belong to one event loop: they live on the loop that uses the
store (`LoopBound`), as a `Connection`. Redis Cluster is not supported.

This class is the façade: producing is in `producing`, taking in `taking`, what becomes
of taken tasks in `outcomes`, recovery in `recovery`, reading in `inspection`, changes by
hand in `admin`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from redis.exceptions import RedisError

from ...errors import StoreError
from ...jobs import Failure, Job, JobState, NewJob, check_new_jobs
from ..base import Counts, JobFilter
from ..binding import LoopBound, NotOpen
from . import admin, inspection, outcomes, recovery
from .connection import Connection, check_server, close_pools, connect, interrupt
from .producing import enqueue
from .taking import Take, acquire, complete_and_acquire
from .target import parse_redis_url

__all__ = ["RedisStore"]

T = TypeVar("T")

_CLOSE_GRACE = 5.0
"""Seconds `close` lets operations under way finish before closing their connections."""
_WAIT_MARGIN = 5.0
"""Seconds a BLPOP may overrun its own timeout before its connection is given up."""


class RedisStore:
    """Tasks in Redis or Valkey, under keys starting with ``prefix:``."""

    def __init__(self, url: str) -> None:
        self._target = parse_redis_url(url)
        self.url = self._target.display
        self.prefix = self._target.prefix
        self._loops = LoopBound(
            f"the store {self.url}",
            functools.partial(connect, self._target),
            close_pools,
            interrupt=interrupt,
            grace=_CLOSE_GRACE,
        )

    async def _call(self, operation: Callable[[Connection], Awaitable[T]]) -> T:
        """Await `operation` on this loop's connection; redis-py errors become `StoreError`."""
        try:
            return await self._loops.run(lambda: operation(self._loops.current()))
        except RedisError as exc:
            if not self._loops.is_open:
                raise StoreError(f"the store {self.url} was closed during the call") from exc
            raise StoreError(f"Redis store {self.url}: {exc}") from exc
        except NotOpen as exc:
            raise StoreError(str(exc)) from None

    # -- lifecycle --------------------------------------------------------------------

    async def open(self, *, create: bool = True) -> None:
        """Connect, check the server's durability settings, and load the scripts.

        Reading never creates keys; opening writes one, ``prefix:schema``, unless
        ``create=False``, which instead refuses a prefix no afterward store ever used.

        :raises StoreError: the server cannot be reached, or no store was ever opened at
            this prefix and `create` is False.
        :raises SchemaTooNew: the keys were written by a newer afterward.
        """
        if self._loops.is_open:
            return
        self._loops.start()
        try:
            await self._call(lambda conn: self._check(conn, create))
        except BaseException:
            await self._loops.close()
            raise

    async def _check(self, conn: Connection, create: bool) -> None:
        try:
            await check_server(conn, self._target, create=create)
        except RedisError as exc:
            raise StoreError(f"cannot open the Redis store {self.url}: {exc}") from exc

    async def close(self) -> None:
        """Close the connections, interrupting any wait (idempotent)."""
        await self._loops.close()

    async def now(self) -> float:
        """The Redis server's clock (``TIME``)."""
        return await self._call(_server_time)

    # -- producing and consuming ------------------------------------------------------

    async def enqueue(
        self,
        jobs: Sequence[NewJob],
        *,
        now: float,
        reserve_for: str | None = None,
        lease: float = 0.0,
    ) -> list[str]:
        """Store `jobs` in one script run; see `Store.enqueue`."""
        check_new_jobs(jobs)
        if not jobs:
            return []
        return await self._call(lambda conn: enqueue(conn, jobs, now, reserve_for, lease))

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
        """Take up to `limit` due tasks for `worker`; see `Store.acquire`."""
        if limit <= 0:
            return []
        take = Take(worker, now, lease, limit, queues, ids)
        return await self._call(lambda conn: acquire(conn, take))

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
        """The `complete` and `acquire` scripts, one after the other in one round trip."""
        take = Take(worker, now, lease, limit, queues, ids)
        return await self._call(lambda conn: complete_and_acquire(conn, attempts, take))

    async def extend_leases(
        self, worker: str, ids: Sequence[str], *, now: float, lease: float
    ) -> set[str]:
        """Renew what `worker` still holds among `ids`; return those ids."""
        if not ids:
            return set()
        return await self._call(lambda conn: outcomes.extend_leases(conn, worker, ids, now, lease))

    async def fail(
        self, job_id: str, worker: str, attempt: int, failure: Failure, *, now: float
    ) -> bool:
        """Record the attempt's error; scheduled at `failure.retry_at`, else failed (fenced)."""
        return await self._call(
            lambda conn: outcomes.fail(conn, job_id, worker, attempt, failure, now)
        )

    async def release(self, worker: str, ids: Sequence[str], *, now: float) -> int:
        """Hand `worker`'s tasks among `ids` back unspent and drop its reservations."""
        if not ids:
            return 0
        return await self._call(lambda conn: outcomes.release(conn, worker, ids, now))

    async def lease_holders(self) -> list[str]:
        """The workers holding a lease on a running task or a reservation."""
        return await self._call(recovery.lease_holders)

    async def recover(self, *, now: float, dead_workers: Sequence[str] = ()) -> int:
        """Take back running tasks whose lease expired or whose holder is dead."""
        dead = list(dead_workers)
        return await self._call(lambda conn: recovery.recover(conn, now, dead))

    # -- administration ---------------------------------------------------------------

    async def cancel(self, job_id: str, *, now: float) -> list[str]:
        """Cancel a task that has not started and the rest of its chain; return their ids."""
        return await self._call(lambda conn: admin.cancel(conn, job_id, now))

    async def retry(self, job_id: str, *, now: float) -> None:
        """Queue a failed or cancelled task again with a fresh budget of attempts."""
        await self._call(lambda conn: admin.retry(conn, job_id, now, self.url))

    async def get(self, job_id: str) -> Job:
        """The task with its attempt history."""
        return await self._call(lambda conn: inspection.get_job(conn, job_id))

    async def list(self, where: JobFilter, *, limit: int = 50, offset: int = 0) -> list[Job]:
        """Tasks matching `where`, newest first (created_at, then id, descending)."""
        start = max(offset, 0)
        return await self._call(lambda conn: inspection.listing(conn, where, limit, start))

    async def counts(self) -> Counts:
        """How many tasks there are by queue and state."""
        return await self._call(inspection.count)

    async def purge(self, *, states: Sequence[JobState], finished_before: float) -> int:
        """Delete tasks in `states` that finished before `finished_before`; return how many."""
        names = sorted({JobState(s).value for s in states})
        if not names:
            return 0
        return await self._call(lambda conn: admin.purge(conn, names, finished_before))

    # -- waking -----------------------------------------------------------------------

    async def wait_for_work(self, timeout: float) -> None:
        """Return when a task became due (a wake-up token), or after `timeout` seconds."""
        opened = self._loops.is_open
        try:
            await self._call(lambda conn: _wait(conn, timeout))
        except StoreError:
            if not opened or self._loops.is_open:
                raise


async def _server_time(conn: Connection) -> float:
    seconds, micros = await conn.client.time()
    return int(seconds) + int(micros) / 1_000_000


async def _wait(conn: Connection, timeout: float) -> None:
    if timeout <= 0:
        return
    seconds = max(round(timeout, 3), 0.001)
    try:
        async with asyncio.timeout(seconds + _WAIT_MARGIN):
            await conn.waiter.blpop([conn.key("wake")], timeout=seconds)
    except TimeoutError:
        return
