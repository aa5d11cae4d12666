"""Recording what became of taken tasks: completions, failures, hand-backs, lease extensions.

Each function is, or returns, a write on the store's connection; a task's attempt is
closed with its outcome in the same write that settles the task.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence

from ...jobs import Failure
from .queries import QUERIES

__all__ = ["close_attempt", "completing", "extending", "fail_attempt", "releasing"]


def completing(
    worker: str, attempts: Sequence[tuple[str, int]], now: float
) -> Callable[[sqlite3.Connection], set[str]]:
    """The completions of `attempts` (task id, attempt number) as a write: the ids done."""

    def write(conn: sqlite3.Connection) -> set[str]:
        done = set()
        for job_id, attempt in attempts:
            params = {"id": job_id, "worker": worker, "attempt": attempt, "now": now}
            row = conn.execute(QUERIES["complete"], params).fetchone()
            if row is None:
                continue
            close_attempt(conn, job_id, attempt, now, "succeeded")
            if row["next_id"] is not None:
                conn.execute(QUERIES["release_next"], {"id": row["next_id"], "now": now})
            done.add(job_id)
        return done

    return write


def fail_attempt(
    conn: sqlite3.Connection,
    job_id: str,
    worker: str,
    attempt: int,
    failure: Failure,
    now: float,
    *,
    live: bool,
    outcome: str = "failed",
) -> bool:
    """Record `failure` of `worker`'s attempt (retry or fail for good); False if not its."""
    params = {
        "id": job_id,
        "worker": worker,
        "attempt": attempt,
        "now": now,
        "retry_at": failure.retry_at,
        "error": failure.error,
        "live": live,
        "outcome": outcome,
    }
    if conn.execute(QUERIES["fail"], params).fetchone() is None:
        return False
    close_attempt(conn, job_id, attempt, now, outcome, failure.error, failure.traceback)
    return True


def releasing(worker: str, ids: Sequence[str], now: float) -> Callable[[sqlite3.Connection], int]:
    """Handing `ids` back (running ones and reservations) as a write: how many ran."""
    params = {"worker": worker, "ids": json.dumps(list(ids)), "now": now}

    def write(conn: sqlite3.Connection) -> int:
        rows = conn.execute(QUERIES["release_running"], params).fetchall()
        for r in rows:
            close_attempt(conn, r["id"], r["attempts"], now, "released")
        conn.execute(QUERIES["drop_reservations"], params)
        return len(rows)

    return write


def extending(
    worker: str, ids: Sequence[str], now: float, lease: float
) -> Callable[[sqlite3.Connection], set[str]]:
    """Extending `worker`'s leases on `ids` as a write: the ids still its."""
    params = {"worker": worker, "ids": json.dumps(list(ids)), "now": now}
    params["expires"] = now + lease

    def write(conn: sqlite3.Connection) -> set[str]:
        return {r["id"] for r in conn.execute(QUERIES["extend_leases"], params)}

    return write


def close_attempt(
    conn: sqlite3.Connection,
    job_id: str,
    number: int,
    now: float,
    outcome: str,
    error: str | None = None,
    traceback: str | None = None,
) -> None:
    conn.execute(
        QUERIES["close_attempt"],
        {
            "job_id": job_id,
            "number": number,
            "now": now,
            "outcome": outcome,
            "error": error,
            "traceback": traceback,
        },
    )
