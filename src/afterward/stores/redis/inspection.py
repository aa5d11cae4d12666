"""Reading tasks without changing them: one task with its attempts, listings newest
first, and the counts by queue and state. A hash that cannot be read shows as well as it
can (`hashes.readable_hash`)."""

from __future__ import annotations

from ...errors import TaskNotFound
from ...jobs import Job, JobState
from ..base import Counts, JobFilter
from ..rows import state_or_failed
from .connection import Connection
from .hashes import attempt_records, matches, readable_hash

__all__ = ["count", "get_job", "listing"]

_LIST_PAGE = 500
"""Ids read from the ``created`` index at a time."""


async def get_job(conn: Connection, job_id: str) -> Job:
    """The task with its attempt history.

    :raises TaskNotFound: there is none.
    """
    async with conn.client.pipeline(transaction=True) as pipe:
        pipe.hgetall(conn.key("job", job_id))
        pipe.hgetall(conn.key("attempts", job_id))
        stored, attempts = await pipe.execute()
    if not stored:
        raise TaskNotFound(job_id)
    return readable_hash(stored, attempt_records(attempts))


async def listing(conn: Connection, where: JobFilter, limit: int, offset: int) -> list[Job]:
    """Tasks matching `where`, newest first (created_at, then id, descending)."""
    states = None if where.states is None else {JobState(s).value for s in where.states}
    unfiltered = states is None and all(
        v is None for v in (where.queue, where.function, where.chain_id, where.id_prefix)
    )
    start, skip = (offset, 0) if unfiltered else (0, offset)
    found: list[Job] = []
    client = conn.client
    while len(found) < limit:
        ids = await client.zrevrange(conn.key("created"), start, start + _LIST_PAGE - 1)
        if not ids:
            break
        start += len(ids)
        prefix = where.id_prefix  # ids are in the index: no hash to read for the rest
        wanted = ids if prefix is None else [i for i in ids if str(i).startswith(prefix)]
        async with client.pipeline(transaction=False) as pipe:
            for job_id in wanted:
                pipe.hgetall(conn.key("job", str(job_id)))
            rows = await pipe.execute()
        for row in rows:
            if not row or not matches(row, where, states):
                continue
            if skip:
                skip -= 1
            elif len(found) < limit:
                found.append(readable_hash(row))
    return found


async def count(conn: Connection) -> Counts:
    """How many tasks there are by queue and state."""
    stored = await conn.client.hgetall(conn.key("counts"))
    counts: dict[tuple[str, JobState], int] = {}
    for field, n in stored.items():
        state, _, queue = str(field).partition(":")
        if int(n) > 0:  # a state no task has counts as failed (see `readable_job`)
            key = (queue, state_or_failed(state))
            counts[key] = counts.get(key, 0) + int(n)
    return counts
