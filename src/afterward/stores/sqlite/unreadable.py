"""Rows that cannot be read: the acquire's strict or lenient read, and failing them for good.

A row may hold text that is not UTF-8 (SQLite stores whatever bytes it is given as
TEXT) or values `afterward.stores.rows` cannot parse; such a task never runs, so it is
failed rather than handed out again and again.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..rows import CorruptRow, Row, UnreadableText
from .connection import lenient_text
from .queries import QUERIES

__all__ = ["NotUtf8", "spoil", "take_rows"]


class NotUtf8(Exception):
    """An acquire read text that is not UTF-8: its write is undone, to be tried carefully."""


def take_rows(
    conn: sqlite3.Connection, query: str, params: dict[str, Any], *, careful: bool
) -> list[Row]:
    """The acquire statement's rows; see `afterward.stores.sqlite.acquire.taking`."""
    if careful:
        with lenient_text(conn):
            return conn.execute(query, params).fetchall()
    try:
        return conn.execute(query, params).fetchall()
    except sqlite3.OperationalError as exc:
        # The driver's decoding (it sets no SQLite error code): the statement's changes
        # stand until the write's savepoint is rolled back. Another error is raised again
        # by the careful try.
        raise NotUtf8 from exc


def spoil(
    conn: sqlite3.Connection,
    corrupt: list[tuple[Row, CorruptRow]],
    now: float,
    outcome: str,
    *,
    owner: str | None = None,
) -> int:
    """Fail for good the running rows that cannot be read, held by `owner` (by default
    their own holder); their attempt ends as `outcome`. Returns how many were failed."""
    failed = 0
    for row, error in corrupt:
        params = {
            "id": _key(row["id"]),
            "owner": _key(row["lease_owner"]) if owner is None else owner,
            "now": now,
            "error": error.reason,
            "outcome": outcome,
        }
        if conn.execute(QUERIES["spoil_job"], params).rowcount:
            failed += 1
            attempt = {"shown": row["id"], "number": row["attempts"]}
            conn.execute(QUERIES["spoil_attempt"], params | attempt)
        error.log_failed(row["id"])
    return failed


def _key(value: Any) -> Any:
    """A stored text as a parameter that finds its row: the bytes of `UnreadableText`."""
    return value.raw if isinstance(value, UnreadableText) else value
