"""Taking due tasks: the acquire as a write, filled past rows that cannot be read."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from ...jobs import Job
from ..rows import Row, split_rows
from .queries import QUERIES
from .unreadable import spoil, take_rows

__all__ = ["taking"]


def taking(
    worker: str,
    now: float,
    lease: float,
    limit: int,
    queues: Sequence[str] | None,
    ids: Sequence[str] | None,
    *,
    careful: bool = False,
    before: Callable[[], object],
) -> Callable[[sqlite3.Connection], list[Job]]:
    """The acquire, as a write. Rows are parsed one by one: a row that cannot be read
    is failed for good (`spoil`) and the batch filled from the rows behind it. Text
    that is not UTF-8 fails the statement itself: the write then raises `NotUtf8`
    (its transaction rolls back) unless `careful`, which reads such text leniently.
    `before` is called first in the write (the store notes the file's data version)."""
    params: dict[str, Any] = {
        "worker": worker,
        "now": now,
        "expires": now + lease,
        "limit": limit,
    }
    if ids is not None:
        query = QUERIES["acquire_ids"]
        params["ids"] = json.dumps(list(ids))
    else:
        query = QUERIES["acquire_due"]
        params.update(any_queue=queues is None, queues=json.dumps(list(queues or ())))

    def write(conn: sqlite3.Connection) -> list[Job]:
        before()
        jobs: list[Job] = []
        while True:
            rows = take_rows(conn, query, params, careful=careful)
            _open_attempts(conn, rows, worker, now)
            taken, corrupt = split_rows(rows)
            jobs += taken
            if not corrupt:
                break
            spoil(conn, corrupt, now, "failed", owner=worker)
            params["limit"] = limit - len(jobs)
            if params["limit"] <= 0:
                break
        jobs.sort(key=lambda j: (-j.priority, j.run_at, j.id))
        return jobs

    return write


def _open_attempts(conn: sqlite3.Connection, rows: list[Row], worker: str, now: float) -> None:
    conn.executemany(
        QUERIES["open_attempt"],
        [{"job_id": r["id"], "number": r["attempts"], "worker": worker, "now": now} for r in rows],
    )
