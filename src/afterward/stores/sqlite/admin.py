"""Inspection and administration: reading tasks leniently, counting, purging,
cancelling and retrying.

Reads here must not fail on a row that cannot be read: they show it as
`readable_job` does, so an operator can see it and act on it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from ...errors import TaskNotFound
from ...jobs import Job, JobState, check_transition
from ..base import Counts, JobFilter
from ..rows import Row, attempt_from_row, readable_job, state_or_failed
from .connection import lenient_text
from .queries import QUERIES

__all__ = ["cancelling", "count", "get_job", "listing", "purging", "retrying"]


def get_job(conn: sqlite3.Connection, job_id: str) -> Job:
    """The task as `readable_job` shows it (a row that cannot be read, too)."""
    with lenient_text(conn):
        row = conn.execute(QUERIES["get_job"], {"id": job_id}).fetchone()
        if row is None:
            raise TaskNotFound(job_id)
        history = conn.execute(QUERIES["get_attempts"], {"id": job_id}).fetchall()
    return readable_job(row, (attempt_from_row(a) for a in history))


def listing(where: JobFilter, limit: int, offset: int) -> Callable[[sqlite3.Connection], list[Job]]:
    """The tasks `where` matches, a page of them, as a read."""
    params = {
        "any_state": where.states is None,
        "states": json.dumps([JobState(s).value for s in where.states or ()]),
        "queue": where.queue,
        "function": where.function,
        "chain_id": where.chain_id,
        "id_prefix": where.id_prefix,
        "limit": limit,
        "offset": offset,
    }

    def read(conn: sqlite3.Connection) -> list[Job]:
        with lenient_text(conn):
            rows = conn.execute(QUERIES["list_jobs"], params).fetchall()
        return [readable_job(r) for r in rows]

    return read


def count(conn: sqlite3.Connection) -> Counts:
    """How many tasks each queue has in each state."""
    with lenient_text(conn):
        rows = conn.execute(QUERIES["counts"]).fetchall()
    counts: dict[tuple[str, JobState], int] = {}
    for r in rows:  # a state no task has counts as failed (see `readable_job`)
        key = (str(r["queue"]), state_or_failed(r["state"]))
        counts[key] = counts.get(key, 0) + r["n"]
    return counts


def purging(
    states: Sequence[JobState], finished_before: float
) -> Callable[[sqlite3.Connection], int]:
    """Deleting the tasks in `states` finished before then, as a write: how many."""
    params: dict[str, Any] = {"states": json.dumps([JobState(s).value for s in states])}
    params["before"] = finished_before

    def write(conn: sqlite3.Connection) -> int:
        conn.execute(QUERIES["purge_attempts"], params)
        return conn.execute(QUERIES["purge_jobs"], params).rowcount

    return write


def cancelling(job_id: str, now: float) -> Callable[[sqlite3.Connection], list[str]]:
    """Cancelling a task and the chain behind it, as a write: the ids cancelled."""

    def write(conn: sqlite3.Connection) -> list[str]:
        job = get_job(conn, job_id)
        check_transition(job.state, "cancel", job_id)
        cancelled = []
        current: str | None = job_id
        from_state = job.state
        while current is not None:
            row = _set_state(conn, current, from_state, JobState.CANCELLED, finished_at=now)
            if row is None:
                break
            cancelled.append(current)
            current, from_state = row["next_id"], JobState.WAITING
        return cancelled

    return write


def retrying(job_id: str, now: float) -> Callable[[sqlite3.Connection], None]:
    """Running a finished task again, as a write; the chain behind it waits again."""

    def write(conn: sqlite3.Connection) -> None:
        job = get_job(conn, job_id)
        check_transition(job.state, "retry", job_id)
        prev_row = conn.execute(QUERIES["get_job"], {"id": job.prev_id}).fetchone()
        # No predecessor, or a purged one (it had finished long ago): runnable.
        runnable = prev_row is None or prev_row["state"] == JobState.SUCCEEDED
        budget = int(job.options.get("max_attempts", job.max_attempts))
        conn.execute(
            QUERIES["requeue"],
            {
                "id": job_id,
                "now": now,
                "budget": budget,
                "to_state": (JobState.QUEUED if runnable else JobState.WAITING).value,
            },
        )
        current = job.next_id
        while current is not None:
            row = _set_state(conn, current, JobState.CANCELLED, JobState.WAITING)
            current = None if row is None else row["next_id"]

    return write


def _set_state(
    conn: sqlite3.Connection,
    job_id: str,
    from_state: JobState,
    to_state: JobState,
    *,
    finished_at: float | None = None,
) -> Row | None:
    """Move the task from one state to another: its row (with ``next_id``), or None
    if it was not in `from_state`."""
    params = {
        "id": job_id,
        "from_state": from_state.value,
        "to_state": to_state.value,
        "finished_at": finished_at,
    }
    row: Row | None = conn.execute(QUERIES["set_state"], params).fetchone()
    return row
