"""Recovery: failing or retrying the tasks whose lease ran out or whose holder died."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence

from ...jobs import decide_lost
from ..rows import split_rows
from .connection import lenient_text
from .outcomes import fail_attempt
from .queries import QUERIES
from .unreadable import spoil

__all__ = ["lease_holders", "recovering"]


def lease_holders(conn: sqlite3.Connection) -> list[str]:
    """The workers holding a lease or a reservation."""
    return [r["lease_owner"] for r in conn.execute(QUERIES["lease_holders"])]


def recovering(now: float, dead_workers: Sequence[str]) -> Callable[[sqlite3.Connection], int]:
    """The recovery as a write: the dead workers' reservations dropped, and each lost
    task's attempt closed as lost (`decide_lost` says whether it runs again). Returns
    how many tasks were taken back."""
    params = {"now": now, "dead": json.dumps(list(dead_workers))}

    def write(conn: sqlite3.Connection) -> int:
        conn.execute(QUERIES["drop_dead_reservations"], params)
        # Leniently: a lost task whose row cannot be read is failed, not left running.
        with lenient_text(conn):
            rows = conn.execute(QUERIES["lost_leases"], params).fetchall()
        jobs, corrupt = split_rows(rows)
        taken = spoil(conn, corrupt, now, "lost")
        for job in jobs:
            failure = decide_lost(job, now, dead=job.lease_owner in dead_workers)
            assert job.lease_owner is not None
            taken += fail_attempt(
                conn,
                job.id,
                job.lease_owner,
                job.attempts,
                failure,
                now,
                live=False,
                outcome="lost",
            )
        return taken

    return write
