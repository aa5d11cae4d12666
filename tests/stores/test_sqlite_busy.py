"""SQLite store: a write transaction waits for another process's lock with its own short
retries, then gives up with SQLite's error after its deadline; other statements keep
SQLite's busy timeout."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from afterward.stores.sqlite.transactions import BUSY_TIMEOUT_S, begin_immediate


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


@pytest.fixture
def two_connections(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, sqlite3.Connection]]:
    path = tmp_path / "busy.db"
    holder, waiter = _connect(path), _connect(path)
    holder.execute("CREATE TABLE t (v INTEGER)")
    try:
        yield holder, waiter
    finally:
        holder.close()
        waiter.close()


def _busy_timeout_ms(conn: sqlite3.Connection) -> int:
    value: int = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    return value


def test_a_transaction_begins_once_the_other_writer_commits(
    two_connections: tuple[sqlite3.Connection, sqlite3.Connection],
) -> None:
    # Given another connection holding the write lock with a row not yet committed
    holder, waiter = two_connections
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    began = threading.Event()
    statements: list[str] = []
    waiter.set_trace_callback(statements.append)

    def begin() -> None:
        begin_immediate(waiter)
        began.set()

    thread = threading.Thread(target=begin)
    thread.start()
    # When the waiter tries to begin, it keeps waiting while the lock is held
    assert not began.wait(0.2)
    holder.execute("COMMIT")
    thread.join(5)
    waiter.set_trace_callback(None)
    # Then it began after the commit, sees the committed row and can write
    assert began.is_set()
    assert waiter.execute("SELECT count(*) FROM t").fetchone()[0] == 1
    waiter.execute("INSERT INTO t VALUES (2)")
    waiter.execute("COMMIT")
    assert holder.execute("SELECT count(*) FROM t").fetchone()[0] == 2
    # And the wait was its own short tries with SQLite's busy handler off (200 ms held,
    # tries at most 2 ms apart), not one statement parked in SQLite's handler
    assert statements[0] == "PRAGMA busy_timeout=0"
    assert statements[1:-1] == ["BEGIN IMMEDIATE"] * (len(statements) - 2)
    assert len(statements) - 2 >= 10
    # And SQLite's busy timeout is back for the connection's other statements
    assert statements[-1] == f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}"
    assert _busy_timeout_ms(waiter) == BUSY_TIMEOUT_S * 1000


def test_a_lock_never_released_fails_with_sqlites_error_after_the_deadline(
    two_connections: tuple[sqlite3.Connection, sqlite3.Connection],
) -> None:
    # Given another connection that holds the write lock and never lets go
    holder, waiter = two_connections
    holder.execute("BEGIN IMMEDIATE")
    # When the waiter tries to begin with a short deadline
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        begin_immediate(waiter, within=0.1)
    # Then it gave up at that deadline, not SQLite's 30 s one (a bound on correctness,
    # far from any speed)
    assert time.monotonic() - started < 5
    # And it holds no transaction and has its busy timeout back
    assert not waiter.in_transaction
    assert _busy_timeout_ms(waiter) == BUSY_TIMEOUT_S * 1000
    holder.execute("ROLLBACK")
