"""Producing: inserting new tasks (a unique key's unfinished task stands instead)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ...jobs import NewJob
from ..rows import new_job_row
from .queries import QUERIES

__all__ = ["insert_jobs"]


def insert_jobs(
    conn: sqlite3.Connection,
    jobs: Sequence[NewJob],
    now: float,
    reserve_for: str | None,
    expires: float,
) -> list[str]:
    """Insert `jobs` (reserved for `reserve_for` until `expires`, if given); their ids."""
    return [_insert(conn, job, now, reserve_for, expires) for job in jobs]


def _insert(
    conn: sqlite3.Connection,
    job: NewJob,
    now: float,
    reserve_for: str | None,
    expires: float,
) -> str:
    if job.unique_key is not None:
        existing = conn.execute(
            QUERIES["find_unfinished_by_unique_key"], {"unique_key": job.unique_key}
        ).fetchone()
        if existing is not None:
            return str(existing["id"])
    conn.execute(
        QUERIES["insert_job"],
        {
            **new_job_row(job, now),
            "lease_owner": reserve_for,
            "lease_expires_at": expires if reserve_for else None,
            "now": now,
        },
    )
    if job.prev_id is not None:
        conn.execute(QUERIES["link_next"], {"id": job.prev_id, "next_id": job.id})
    return job.id
