"""Inspection and purging: reading tasks, counting them, deleting finished ones.

Each is one statement on a pooled connection. Rows are shown as `readable_job` shows
them, so a row that cannot be read is still listed; cancelling and retrying, which lock
chains of tasks, are in `writes`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import TaskNotFound
from ...jobs import Job, JobState
from ..base import Counts, JobFilter
from ..rows import attempt_from_row, readable_job, state_or_failed
from .queries import QUERIES
from .writes import Conn

__all__ = ["count", "get_job", "list_jobs", "purge"]


async def get_job(conn: Conn, job_id: str) -> Job:
    """The task and its attempts (as JSON)."""
    cur = await conn.execute(QUERIES["get_job"], {"id": job_id})
    row = await cur.fetchone()
    if row is None:
        raise TaskNotFound(job_id)
    return readable_job(row, (attempt_from_row(a) for a in row["history"]))


async def list_jobs(conn: Conn, where: JobFilter, limit: int, offset: int) -> list[Job]:
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
    cur = await conn.execute(QUERIES["list_jobs"], params)
    return [readable_job(r) for r in await cur.fetchall()]


async def count(conn: Conn) -> Counts:
    """Tasks by (queue, state)."""
    counts: dict[tuple[str, JobState], int] = {}
    cur = await conn.execute(QUERIES["counts"], {})
    for r in await cur.fetchall():  # see `readable_job` for an unknown state
        key = (r["queue"], state_or_failed(r["state"]))
        counts[key] = counts.get(key, 0) + r["n"]
    return counts


async def purge(conn: Conn, states: Sequence[JobState], finished_before: float) -> int:
    """One statement deleting the tasks and their attempts: how many tasks."""
    params = {"states": [JobState(s).value for s in states], "before": finished_before}
    cur = await conn.execute(QUERIES["purge"], params)
    row = await cur.fetchone()
    assert row is not None
    return int(row["n"])
