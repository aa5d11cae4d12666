"""Taking due tasks: the acquire statement, and completions sent with it.

The completions and the acquire go in one transaction and one round trip (pipeline
mode): one commit, and the acquire sees what the completions released.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import errors
from psycopg.rows import DictRow

from ...jobs import Job
from .listen import Waker
from .queries import QUERIES
from .writes import Conn, spoil_at_limit, take_jobs

__all__ = ["complete_and_take", "completion_params", "taking"]


def taking(
    waker: Waker,
    worker: str,
    now: float,
    lease: float,
    limit: int,
    queues: Sequence[str] | None,
    ids: Sequence[str] | None,
) -> tuple[str, dict[str, Any]]:
    """The acquire statement (its name) and its parameters; a worker looking for any
    work listens for more from then on."""
    if ids is None:
        waker.start()
    waker.mark()
    params: dict[str, Any] = {"worker": worker, "now": now, "expires": now + lease}
    params.update(limit=limit, relaxed=True)
    if ids is not None:
        return "acquire_ids", {**params, "ids": list(ids)}
    return "acquire_due", {**params, "queues": None if queues is None else list(queues)}


def completion_params(
    worker: str, attempts: Sequence[tuple[str, int]], now: float, channel: str
) -> dict[str, Any]:
    """The parameters of the ``complete`` statement for `attempts` (task id, attempt)."""
    return {
        "ids": [job_id for job_id, _ in attempts],
        "attempts": [int(attempt) for _, attempt in attempts],
        "worker": worker,
        "now": now,
        "channel": channel,
    }


async def complete_and_take(
    conn: Conn,
    completing: dict[str, Any] | None,
    query: str,
    params: dict[str, Any],
    worker: str,
    now: float,
) -> tuple[list[DictRow], list[Job]]:
    """The completions (`completing`, if any: see `completion_params`) and the acquire
    `query` with `params` (see `taking`): the completions' rows and the tasks taken."""
    try:
        done, rows = await _both(conn, completing, query, params)
    except errors.NumericValueOutOfRange:  # all rolled back: see take_jobs
        await spoil_at_limit(conn, now)
        done, rows = await _both(conn, completing, query, params)
    return done, await take_jobs(conn, query, params, worker, now, first=rows)


async def _both(
    conn: Conn, completing: dict[str, Any] | None, query: str, params: dict[str, Any]
) -> tuple[list[DictRow], list[DictRow]]:
    """Both statements in one transaction and one round trip: the completions' rows
    and the acquire's."""
    async with conn.pipeline(), conn.transaction():
        complete = None
        if completing is not None:
            complete = await conn.execute(QUERIES["complete"], completing)
        take = await conn.execute(QUERIES[query], params) if params["limit"] > 0 else None
    done = await complete.fetchall() if complete else []
    rows = await take.fetchall() if take else []
    return done, rows
