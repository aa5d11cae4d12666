"""Steps of the PostgreSQL store that need Python between statements, on one connection."""

from __future__ import annotations

import logging
import select
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import AsyncConnection, errors, pq
from psycopg.rows import DictRow, dict_row

from ...errors import StoreError, TaskNotFound
from ...jobs import Failure, Job, JobState, NewJob, check_transition, decide_lost
from ..rows import CorruptRow, Row, new_job_row, readable_job, split_rows
from .queries import QUERIES

__all__ = [
    "Conn",
    "cancel_chain",
    "check_idle",
    "columns",
    "copy_jobs",
    "fail_params",
    "insert_jobs",
    "recover_leases",
    "retry_chain",
    "spoil",
    "take_jobs",
]

log = logging.getLogger("afterward.store")

_AT_LIMIT = CorruptRow("attempts", "is at the integer limit (2147483647)")

Conn = AsyncConnection[DictRow]

_UNIQUE_ROUNDS = 5
"""Times enqueue tries again when a unique key's holder finished between its two steps."""


async def check_idle(conn: Conn) -> None:
    """Before lending a pooled connection, ping it if the server spoke while it sat idle
    (typically: it was terminated by a restart), so that a dead one is replaced rather
    than failing the operation. A silent connection costs nothing: no round trip."""
    if _readable(conn.fileno()):
        await conn.execute(QUERIES["ping"])


def _readable(fd: int) -> bool:
    """Whether `fd` has data (or an end of file) waiting, without blocking."""
    if sys.platform == "win32":
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()  # unlike select(), not limited to descriptors below 1024
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


async def insert_jobs(
    conn: AsyncConnection[Any], jobs: Sequence[NewJob], now: float, extra: Mapping[str, Any]
) -> tuple[list[str], bool]:
    """Insert `jobs`; a job whose unique key an unfinished task holds gets that task's id.

    A batch that `_copyable` allows is streamed by ``COPY`` (`copy_jobs`). Otherwise the
    insert skips such jobs (``ON CONFLICT DO NOTHING``, which waits for a concurrent
    insert of the key to commit or roll back); their holders are then looked up. A holder
    may finish in between: those jobs are inserted again. Returns the ids, and whether
    workers were woken.
    """
    if len(jobs) > 1 and _copyable(conn, jobs):
        return [job.id for job in jobs], await copy_jobs(conn, jobs, now, extra)
    ids: dict[int, str] = {}
    woken = False
    pending = list(range(len(jobs)))
    for _ in range(_UNIQUE_ROUNDS):
        batch = [jobs[i] for i in pending]
        if len(batch) == 1 and batch[0].chain_id is None and batch[0].prev_id is None:
            row = new_job_row(batch[0], now)
            query, params = QUERIES["insert_job"], {**row, **extra}
        else:
            query, params = QUERIES["insert_jobs"], {**columns(batch, now), **extra}
        cur = conn.cursor(row_factory=dict_row)  # any connection: the caller's too
        rows = await (await cur.execute(query, params)).fetchall()
        inserted = {r["id"] for r in rows}
        woken = woken or any(r["woken"] for r in rows)
        ids.update((i, jobs[i].id) for i in pending if jobs[i].id in inserted)
        skipped = [i for i in pending if jobs[i].id not in inserted]
        if skipped:
            keys = [jobs[i].unique_key for i in skipped]
            found = await cur.execute(QUERIES["find_unfinished_by_unique_keys"], {"keys": keys})
            holders = {r["unique_key"]: r["id"] for r in await found.fetchall()}
            ids.update((i, holders[k]) for i in skipped if (k := jobs[i].unique_key) in holders)
        pending = [i for i in skipped if i not in ids]
        if not pending:
            return [ids[i] for i in range(len(jobs))], woken
    raise StoreError(f"could not settle the unique keys of {len(pending)} tasks; try again")


def _copyable(conn: AsyncConnection[Any], jobs: Sequence[NewJob]) -> bool:
    """Whether `jobs` can be streamed by ``COPY``, which cannot skip a row (a unique key),
    point an earlier task at a new one (a chain begun before the batch), or run in a
    pipeline. Where it can, it takes about half the time of `insert_jobs`, from two
    tasks to hundreds (figures in bench/analysis.md)."""
    ids = set()
    for job in jobs:
        if job.unique_key is not None or (job.prev_id is not None and job.prev_id not in ids):
            return False
        ids.add(job.id)
    return conn.pgconn.pipeline_status == pq.PipelineStatus.OFF


async def copy_jobs(
    conn: AsyncConnection[Any], jobs: Sequence[NewJob], now: float, extra: Mapping[str, Any]
) -> bool:
    """Insert `jobs` (see `_copyable`) by ``COPY``, then wake the workers unless the jobs
    are reserved (at once in autocommit, else at the commit). Returns whether it woke them."""
    owner = extra["lease_owner"]
    lease = (owner, extra["lease_expires_at"])
    next_of = _next_ids(jobs)
    cur = conn.cursor()
    async with cur.copy(QUERIES["copy_jobs"]) as copy:
        for job in jobs:
            state, run_at = job.start(now)
            task = (job.id, job.function, job.payload, job.queue, state.value, job.priority)
            links = (job.chain_id, job.prev_id, next_of.get(job.id))
            await copy.write_row(
                (*task, run_at, job.max_attempts, job.options.text, *links, *lease, now)
            )
    if owner is not None:
        return False
    await cur.execute(QUERIES["notify"], {"channel": extra["channel"]})
    return True


def columns(jobs: Sequence[NewJob], now: float) -> dict[str, list[Any]]:
    """`jobs` as one list per column, for ``insert_jobs``'s ``unnest``."""
    next_of = _next_ids(jobs)
    rows = [new_job_row(j, now) for j in jobs]
    lists = {
        param: [r[column] for r in rows]
        for param, column in (
            ("ids", "id"),
            ("functions", "function"),
            ("payloads", "payload"),
            ("queues", "queue"),
            ("states", "state"),
            ("priorities", "priority"),
            ("run_ats", "run_at"),
            ("max_attempts", "max_attempts"),
            ("options", "options"),
            ("chain_ids", "chain_id"),
            ("prev_ids", "prev_id"),
            ("unique_keys", "unique_key"),
        )
    }
    return {**lists, "next_ids": [next_of.get(job.id) for job in jobs]}


def _next_ids(jobs: Sequence[NewJob]) -> dict[str | None, str]:
    """Each task's id keyed by the id of the task before it in the batch's chains: the
    ``next_id`` a batch stores with its rows (a later row cannot update an earlier one)."""
    return {job.prev_id: job.id for job in jobs if job.prev_id is not None}


def fail_params(
    job_id: str,
    worker: str,
    attempt: int,
    failure: Failure,
    now: float,
    channel: str,
    *,
    live: bool,
    outcome: str = "failed",
) -> dict[str, Any]:
    """The parameters of the ``fail`` statement."""
    return {
        "id": job_id,
        "worker": worker,
        "attempt": attempt,
        "now": now,
        "retry_at": failure.retry_at,
        "error": failure.error,
        "traceback": failure.traceback,
        "live": live,
        "outcome": outcome,
        "channel": channel,
    }


async def take_jobs(
    conn: Conn,
    query: str,
    params: dict[str, Any],
    worker: str,
    now: float,
    first: Sequence[Row] | None = None,
) -> list[Job]:
    """Run the acquire statement `query` (or start from its rows, `first`) and read its
    rows one by one: a row that cannot be read is failed for good (`spoil`), and the
    batch is filled from the rows behind it. Tasks come back in the statement's order.

    A task whose attempts are at the integer limit fails the whole statement: those are
    failed for good first (`spoil_at_limit`) and the statement run again.
    """
    limit = int(params["limit"])
    rows = first if first is not None else await _take(conn, query, params, now)
    jobs, corrupt = split_rows(rows)
    refills = 0
    while corrupt and len(jobs) < limit:
        await spoil(conn, corrupt, now, "failed", owner=worker)
        rows = await _take(conn, query, {**params, "limit": limit - len(jobs)}, now)
        more, corrupt = split_rows(rows)
        jobs += more
        refills += 1
    if corrupt:
        await spoil(conn, corrupt, now, "failed", owner=worker)
    if refills:
        jobs.sort(key=lambda j: (-j.priority, j.run_at, j.id))  # as COLLATE "C"
    return jobs


async def _take(conn: Conn, query: str, params: Mapping[str, Any], now: float) -> list[DictRow]:
    try:
        cur = await conn.execute(QUERIES[query], params)
    except errors.NumericValueOutOfRange:
        await spoil_at_limit(conn, now)
        cur = await conn.execute(QUERIES[query], params)
    return await cur.fetchall()


async def spoil_at_limit(conn: Conn, now: float) -> None:
    """Fail for good the due tasks whose attempts cannot count one more (see `take_jobs`)."""
    params = {"now": now, "error": _AT_LIMIT.reason}
    for row in await (await conn.execute(QUERIES["spoil_at_limit"], params)).fetchall():
        log.error("task %r cannot be taken, failed for good: %s", row["id"], _AT_LIMIT.reason)


async def spoil(
    conn: Conn,
    corrupt: Sequence[tuple[Row, CorruptRow]],
    now: float,
    outcome: str,
    *,
    owner: str | None = None,
) -> int:
    """Fail for good the running rows that cannot be read, held by `owner` (by default
    their own holder); their attempt ends as `outcome`. Returns how many were failed."""
    params = {
        "ids": [row["id"] for row, _ in corrupt],
        "owners": [row["lease_owner"] if owner is None else owner for row, _ in corrupt],
        "errors": [error.reason for _, error in corrupt],
        "now": now,
        "outcome": outcome,
    }
    row = await (await conn.execute(QUERIES["spoil"], params)).fetchone()
    for stored, error in corrupt:
        error.log_failed(stored["id"])
    return 0 if row is None else int(row["n"])


async def recover_leases(
    conn: Conn, now: float, dead_workers: Sequence[str], channel: str
) -> tuple[int, bool]:
    """Take back lost running tasks, as decided by `decide_lost`; drop dead reservations.

    Returns how many tasks were taken back, and whether workers were woken.
    """
    params = {"now": now, "dead": list(dead_workers)}
    taken, woken = 0, False
    cur = await conn.execute(QUERIES["drop_dead_reservations"], params)
    if cur.rowcount > 0:
        await conn.execute(QUERIES["notify"], {"channel": channel})
        woken = True
    cur = await conn.execute(QUERIES["lost_leases"], params)
    jobs, corrupt = split_rows(await cur.fetchall())
    if corrupt:
        taken += await spoil(conn, corrupt, now, "lost")
    for job in jobs:
        assert job.lease_owner is not None
        failure = decide_lost(job, now, dead=job.lease_owner in dead_workers)
        failed = fail_params(
            job.id, job.lease_owner, job.attempts, failure, now, channel, live=False
        )
        cur = await conn.execute(QUERIES["fail"], {**failed, "outcome": "lost"})
        if (done := await cur.fetchone()) is not None:
            taken += 1
            woken = woken or bool(done["woken"])
    return taken, woken


async def cancel_chain(conn: Conn, job_id: str, now: float) -> list[str]:
    """Cancel a task that has not started and the rest of its chain; return their ids."""
    job = await _lock_job(conn, job_id)
    check_transition(job.state, "cancel", job_id)
    cancelled: list[str] = []
    current: str | None = job_id
    from_state = job.state
    while current is not None:
        row = await _set_state(conn, current, from_state, JobState.CANCELLED, now)
        if row is None:
            break
        cancelled.append(current)
        current, from_state = row["next_id"], JobState.WAITING
    return cancelled


async def retry_chain(conn: Conn, job_id: str, now: float, channel: str) -> bool:
    """Queue a failed or cancelled task again (waiting, if its predecessor has not
    succeeded) and set its cancelled successors waiting; return whether it is runnable."""
    job = await _lock_job(conn, job_id)
    check_transition(job.state, "retry", job_id)
    # Locked: a predecessor completing now releases this task after we commit.
    try:
        prev = await _lock_job(conn, job.prev_id) if job.prev_id else None
    except TaskNotFound:  # purged: it had finished long ago, nothing to wait for
        prev = None
    runnable = prev is None or prev.state is JobState.SUCCEEDED
    requeue = {
        "id": job_id,
        "now": now,
        "budget": int(job.options.get("max_attempts", job.max_attempts)),
        "to_state": (JobState.QUEUED if runnable else JobState.WAITING).value,
    }
    await conn.execute(QUERIES["requeue"], requeue)
    current = job.next_id
    while current is not None:  # the chain behind it waits again
        row = await _set_state(conn, current, JobState.CANCELLED, JobState.WAITING)
        current = None if row is None else row["next_id"]
    if runnable:
        await conn.execute(QUERIES["notify"], {"channel": channel})
    return runnable


async def _lock_job(conn: Conn, job_id: str) -> Job:
    cur = await conn.execute(QUERIES["lock_job"], {"id": job_id})
    row = await cur.fetchone()
    if row is None:
        raise TaskNotFound(job_id)
    return readable_job(row)


async def _set_state(
    conn: Conn, job_id: str, from_state: JobState, to_state: JobState, now: float | None = None
) -> DictRow | None:
    """Move a task between states; `now` is its finish time (None: not finished)."""
    params = {
        "id": job_id,
        "from_state": from_state.value,
        "to_state": to_state.value,
        "finished_at": now,
    }
    cur = await conn.execute(QUERIES["set_state"], params)
    return await cur.fetchone()
