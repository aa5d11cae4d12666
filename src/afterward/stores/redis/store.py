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
store (`LoopBound`). Redis Cluster is not supported.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import logging
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from ...errors import StoreError, TaskNotFound
from ...jobs import (
    Failure,
    Job,
    JobState,
    NewJob,
    check_new_jobs,
    check_transition,
    decide_lost,
)
from ..base import Counts, JobFilter
from ..binding import LoopBound, NotOpen
from ..rows import CorruptRow, state_or_failed
from .connection import check_server, close_pools, connect, interrupt
from .hashes import (
    attempt_records,
    encode_jobs,
    matches,
    readable_hash,
    split_hashes,
    spoil_args,
    stamp,
)
from .target import parse_redis_url

__all__ = ["RedisStore"]

T = TypeVar("T")

log = logging.getLogger("afterward.store")

_LIST_PAGE = 500
_PURGE_BATCH = 500
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

    # -- plumbing ---------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def _redis(self) -> Redis:
        return self._loops.current().client

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` with the clients open; redis-py errors become `StoreError`."""
        try:
            return await self._loops.run(lambda: coro)
        except RedisError as exc:
            if not self._loops.is_open:
                raise StoreError(f"the store {self.url} was closed during the call") from exc
            raise StoreError(f"Redis store {self.url}: {exc}") from exc
        except NotOpen as exc:
            raise StoreError(str(exc)) from None
        finally:
            coro.close()  # if it never started (closed store): no "never awaited" warning

    async def _script(self, name: str, *args: str | int) -> Any:
        script = self._loops.current().scripts[name]
        return await script(keys=[], args=[self.prefix, *args])

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
            await self._call(self._check(create))
        except BaseException:
            await self._loops.close()
            raise

    async def _check(self, create: bool) -> None:
        try:
            await check_server(self._loops.current(), self._target, create=create)
        except RedisError as exc:
            raise StoreError(f"cannot open the Redis store {self.url}: {exc}") from exc

    async def close(self) -> None:
        """Close the connections, interrupting any wait (idempotent)."""
        await self._loops.close()

    async def now(self) -> float:
        """The Redis server's clock (``TIME``)."""
        return await self._call(self._now())

    async def _now(self) -> float:
        seconds, micros = await self._redis().time()
        return int(seconds) + int(micros) / 1_000_000

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
        args = [stamp(now), reserve_for or "", stamp(now + lease)]
        ids = await self._call(self._script("enqueue", *args, encode_jobs(jobs)))
        return [str(i) for i in ids]

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
        args = self._acquire_args(worker, now, lease, limit, queues, ids)
        rows = await self._call(self._script("acquire", *args))
        return await self._taken(rows, worker, now, lease, limit, queues, ids)

    @staticmethod
    def _acquire_args(
        worker: str,
        now: float,
        lease: float,
        limit: int,
        queues: Sequence[str] | None,
        ids: Sequence[str] | None,
    ) -> list[str | int]:
        if ids is not None:
            mode, names = "ids", list(ids)
        elif queues is not None:
            mode, names = "queues", list(queues)
        else:
            mode, names = "all", []
        return [stamp(now), worker, stamp(now + lease), limit, mode, *names]

    async def _taken(
        self,
        rows: Sequence[Sequence[str]],
        worker: str,
        now: float,
        lease: float,
        limit: int,
        queues: Sequence[str] | None,
        ids: Sequence[str] | None,
    ) -> list[Job]:
        """The acquired hashes as jobs, read one by one. The script has taken them all: a
        hash that cannot be read is handed back failed for good (spoil.lua), and the batch
        filled from the tasks behind it."""
        jobs, corrupt = split_hashes(rows)
        if corrupt:
            jobs += await self._call(
                self._refill(corrupt, worker, now, lease, limit - len(jobs), queues, ids)
            )
        jobs.sort(key=lambda j: (-j.priority, j.run_at, j.id))  # ids: code points sort as UTF-8
        return jobs

    async def _refill(
        self,
        corrupt: builtins.list[tuple[Mapping[str, str], CorruptRow]],
        worker: str,
        now: float,
        lease: float,
        want: int,
        queues: Sequence[str] | None,
        ids: Sequence[str] | None,
    ) -> builtins.list[Job]:
        jobs: builtins.list[Job] = []
        while corrupt:
            await self._spoil(corrupt, now, "failed", worker)
            if want - len(jobs) <= 0:
                break
            args = self._acquire_args(worker, now, lease, want - len(jobs), queues, ids)
            more, corrupt = split_hashes(await self._script("acquire", *args))
            jobs += more
        return jobs

    async def _spoil(
        self,
        corrupt: Sequence[tuple[Mapping[str, str], CorruptRow]],
        now: float,
        outcome: str,
        holder: str | None = None,
    ) -> int:
        """Fail for good the running tasks whose hashes cannot be read (spoil.lua)."""
        for fields, error in corrupt:
            error.log_failed(fields.get("id", ""))
        return int(await self._script("spoil", stamp(now), outcome, *spoil_args(corrupt, holder)))

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
        """The `complete` and `acquire` scripts, one after the other in one round trip (a
        pipeline): each is atomic, and the acquire sees what the completions released."""
        calls: list[tuple[str, list[str | int]]] = []
        if attempts:
            calls.append(("complete", self._complete_args(worker, attempts, now)))
        if limit > 0:
            calls.append(("acquire", self._acquire_args(worker, now, lease, limit, queues, ids)))
        answers = iter(await self._call(self._scripts_at_once(calls)))
        done = {str(i) for i in next(answers)} if attempts else set()
        rows = next(answers) if limit > 0 else []
        return done, await self._taken(rows, worker, now, lease, limit, queues, ids)

    async def _scripts_at_once(self, calls: list[tuple[str, list[str | int]]]) -> list[Any]:
        """Run scripts in order in one pipeline; one the server lost (a restart with no
        script cache) is loaded and run again on its own, after those before it."""
        scripts = self._loops.current().scripts
        async with self._redis().pipeline(transaction=False) as pipe:
            for name, args in calls:
                pipe.evalsha(scripts[name].sha, 0, self.prefix, *args)
            answers: list[Any] = await pipe.execute(raise_on_error=False)
        for i, ((name, args), answer) in enumerate(zip(calls, answers, strict=True)):
            if isinstance(answer, NoScriptError):
                answers[i] = await self._script(name, *args)
            elif isinstance(answer, Exception):
                raise answer
        return answers

    async def extend_leases(
        self, worker: str, ids: Sequence[str], *, now: float, lease: float
    ) -> set[str]:
        """Renew what `worker` still holds among `ids`; return those ids."""
        if not ids:
            return set()
        args = [stamp(now), worker, stamp(now + lease), *ids]
        return {str(i) for i in await self._call(self._script("extend_leases", *args))}

    @staticmethod
    def _complete_args(
        worker: str, attempts: Sequence[tuple[str, int]], now: float
    ) -> list[str | int]:
        pairs = [str(v) for job_id, attempt in attempts for v in (job_id, int(attempt))]
        return [stamp(now), worker, *pairs]

    async def fail(
        self, job_id: str, worker: str, attempt: int, failure: Failure, *, now: float
    ) -> bool:
        """Record the attempt's error; scheduled at `failure.retry_at`, else failed (fenced)."""
        return await self._call(self._fail(job_id, worker, attempt, failure, now, "live", "failed"))

    async def _fail(
        self,
        job_id: str,
        worker: str,
        attempt: int,
        failure: Failure,
        now: float,
        mode: str,
        outcome: str,
    ) -> bool:
        retry_at = "" if failure.retry_at is None else stamp(failure.retry_at)
        args = [stamp(now), job_id, worker, str(int(attempt)), mode, outcome]
        args += [failure.error, failure.traceback, retry_at]
        return bool(await self._script("fail", *args))

    async def release(self, worker: str, ids: Sequence[str], *, now: float) -> int:
        """Hand `worker`'s tasks among `ids` back unspent and drop its reservations."""
        if not ids:
            return 0
        return int(await self._call(self._script("release", stamp(now), worker, *ids)))

    async def lease_holders(self) -> list[str]:
        """The workers holding a lease on a running task or a reservation."""
        return sorted(await self._call(self._script("lease_holders")))

    async def recover(self, *, now: float, dead_workers: Sequence[str] = ()) -> int:
        """Take back running tasks whose lease expired or whose holder is dead."""
        return await self._call(self._recover(now, list(dead_workers)))

    async def _recover(self, now: float, dead_workers: list[str]) -> int:
        jobs, corrupt = split_hashes(await self._script("lost", stamp(now), *dead_workers))
        taken = await self._spoil(corrupt, now, "lost") if corrupt else 0
        for job in jobs:
            assert job.lease_owner is not None
            dead = job.lease_owner in dead_workers
            failure = decide_lost(job, now, dead=dead)
            mode = "any" if dead else "expired"
            taken += await self._fail(
                job.id, job.lease_owner, job.attempts, failure, now, mode, "lost"
            )
        return taken

    # -- administration ---------------------------------------------------------------

    async def cancel(self, job_id: str, *, now: float) -> list[str]:
        """Cancel a task that has not started and the rest of its chain; return their ids."""
        answer = await self._call(self._script("cancel", stamp(now), job_id))
        if answer[0] == "missing":
            raise TaskNotFound(job_id)
        if answer[0] == "state":
            check_transition(JobState(answer[1]), "cancel", job_id)
        return [str(i) for i in answer[1:]]

    async def retry(self, job_id: str, *, now: float) -> None:
        """Queue a failed or cancelled task again with a fresh budget of attempts."""
        await self._call(self._retry(job_id, now))

    async def _retry(self, job_id: str, now: float) -> None:
        job = await self._get(job_id)  # as shown: a corrupt one reads as failed
        check_transition(job.state, "retry", job_id)
        budget = int(job.options.get("max_attempts", job.max_attempts))
        answer = await self._script("retry", stamp(now), job_id, str(budget))
        if answer[0] == "missing":
            raise TaskNotFound(answer[1])
        if answer[0] == "state":
            check_transition(JobState(answer[1]), "retry", job_id)
        if answer[0] == "conflict":
            raise StoreError(
                f"Redis store {self.url}: cannot retry task {job_id}: its unique key is held "
                f"by the unfinished task {answer[1]}"
            )

    async def get(self, job_id: str) -> Job:
        """The task with its attempt history."""
        return await self._call(self._get(job_id))

    async def _get(self, job_id: str) -> Job:
        async with self._redis().pipeline(transaction=True) as pipe:
            pipe.hgetall(self._key("job", job_id))
            pipe.hgetall(self._key("attempts", job_id))
            stored, attempts = await pipe.execute()
        if not stored:
            raise TaskNotFound(job_id)
        return readable_hash(stored, attempt_records(attempts))

    async def list(self, where: JobFilter, *, limit: int = 50, offset: int = 0) -> list[Job]:
        """Tasks matching `where`, newest first (created_at, then id, descending)."""
        return await self._call(self._list(where, limit, max(offset, 0)))

    async def _list(self, where: JobFilter, limit: int, offset: int) -> builtins.list[Job]:
        states = None if where.states is None else {JobState(s).value for s in where.states}
        unfiltered = states is None and all(
            v is None for v in (where.queue, where.function, where.chain_id, where.id_prefix)
        )
        start, skip = (offset, 0) if unfiltered else (0, offset)
        found: builtins.list[Job] = []
        client = self._redis()
        while len(found) < limit:
            ids = await client.zrevrange(self._key("created"), start, start + _LIST_PAGE - 1)
            if not ids:
                break
            start += len(ids)
            prefix = where.id_prefix  # ids are in the index: no hash to read for the rest
            wanted = ids if prefix is None else [i for i in ids if str(i).startswith(prefix)]
            async with client.pipeline(transaction=False) as pipe:
                for job_id in wanted:
                    pipe.hgetall(self._key("job", str(job_id)))
                rows = await pipe.execute()
            for row in rows:
                if not row or not matches(row, where, states):
                    continue
                if skip:
                    skip -= 1
                elif len(found) < limit:
                    found.append(readable_hash(row))
        return found

    async def counts(self) -> Counts:
        """How many tasks there are by queue and state."""
        return await self._call(self._counts())

    async def _counts(self) -> Counts:
        stored = await self._redis().hgetall(self._key("counts"))
        counts: dict[tuple[str, JobState], int] = {}
        for field, n in stored.items():
            state, _, queue = str(field).partition(":")
            if int(n) > 0:  # a state no task has counts as failed (see `readable_job`)
                key = (queue, state_or_failed(state))
                counts[key] = counts.get(key, 0) + int(n)
        return counts

    async def purge(self, *, states: Sequence[JobState], finished_before: float) -> int:
        """Delete tasks in `states` that finished before `finished_before`; return how many."""
        names = sorted({JobState(s).value for s in states})
        if not names:
            return 0
        return await self._call(self._purge(names, finished_before))

    async def _purge(self, states: Sequence[str], before: float) -> int:
        deleted = 0
        while True:
            n, more = await self._script("purge", stamp(before), _PURGE_BATCH, *states)
            deleted += int(n)
            if not more:
                return deleted

    # -- waking -----------------------------------------------------------------------

    async def wait_for_work(self, timeout: float) -> None:
        """Return when a task became due (a wake-up token), or after `timeout` seconds."""
        opened = self._loops.is_open
        try:
            await self._call(self._wait(timeout))
        except StoreError:
            if not opened or self._loops.is_open:
                raise

    async def _wait(self, timeout: float) -> None:
        waiter = self._loops.current().waiter
        if timeout <= 0:
            return
        seconds = max(round(timeout, 3), 0.001)
        try:
            async with asyncio.timeout(seconds + _WAIT_MARGIN):
                await waiter.blpop([self._key("wake")], timeout=seconds)
        except TimeoutError:
            return
