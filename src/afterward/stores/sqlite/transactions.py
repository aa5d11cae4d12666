"""SQLite transactions of the store's connection, and waiting for other processes' locks."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = [
    "BUSY_TIMEOUT_S",
    "begin_immediate",
    "execute_script",
    "is_busy",
    "retry_while_busy",
    "transaction",
]

BUSY_TIMEOUT_S = 30.0
"""How long a statement waits for another process's lock before "database is locked"."""


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error."""
    begin_immediate(conn)
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def begin_immediate(conn: sqlite3.Connection, *, within: float = BUSY_TIMEOUT_S) -> None:
    """``BEGIN IMMEDIATE``, retried every 50 µs to 2 ms while another process writes.

    SQLite's own busy handler sleeps milliseconds between tries, far longer than another
    process's write transaction holds the lock, so workers sharing a file would spend
    most of their time asleep. Here the wait is ours and short; other statements keep the
    handler: the busy timeout goes back to `BUSY_TIMEOUT_S`, the one every store
    connection opens with. (Measured in bench/analysis.md.)
    """
    conn.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + within
        delay = 0.00005
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.002)
    finally:
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether `exc` says another process holds the lock."""
    # SQLITE_BUSY ("database is locked") passes; SQLITE_LOCKED, a conflict inside this
    # connection, would not pass by waiting.
    return exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY


def retry_while_busy(step: Callable[[], object], *, within: float = BUSY_TIMEOUT_S) -> None:
    """Run `step`, again while another process holds the lock, for up to `within` seconds.

    Switching a new file to WAL needs an exclusive lock, and SQLite answers "database is
    locked" at once, without its busy handler, when processes race to open a new file.
    """
    deadline = time.monotonic() + within
    delay = 0.005
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def execute_script(conn: sqlite3.Connection, script: str) -> None:
    """Run each statement of `script` inside the current transaction.

    (`executescript` would commit first, breaking the migration's lock.)
    """
    statement = ""
    for line in script.splitlines():
        if line.lstrip().startswith("--"):
            continue
        statement += line + "\n"
        if sqlite3.complete_statement(statement):
            conn.execute(statement)
            statement = ""
