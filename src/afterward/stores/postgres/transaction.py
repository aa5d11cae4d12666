"""Enqueue inside the caller's own PostgreSQL transaction.

What the application writes and the tasks it triggers then commit or roll back together,
and no worker can see a task before its transaction commits. The caller's connection is
used as given (never closed, never committed): a psycopg connection, or a SQLAlchemy
`Session`/`Connection` (sync) or `AsyncSession`/`AsyncConnection` on the psycopg driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ...errors import ConfigurationError, StoreError
from ...jobs import NewJob, check_new_jobs
from .queries import QUERIES
from .target import Target
from .writes import columns, insert_jobs

__all__ = ["async_driver_connection", "enqueue_in", "enqueue_in_sync", "sync_driver_connection"]


async def async_driver_connection(transaction: Any) -> psycopg.AsyncConnection[Any]:
    """The psycopg connection under `transaction` (psycopg or SQLAlchemy, async)."""
    if isinstance(transaction, psycopg.AsyncConnection):
        return transaction
    if hasattr(transaction, "get_raw_connection"):  # SQLAlchemy AsyncConnection
        raw = await transaction.get_raw_connection()
        conn: psycopg.AsyncConnection[Any] = _checked(
            raw.driver_connection, psycopg.AsyncConnection
        )
        return conn
    if hasattr(transaction, "connection") and hasattr(transaction, "sync_session"):
        connection = await transaction.connection()  # SQLAlchemy AsyncSession
        return await async_driver_connection(connection)
    raise ConfigurationError(_unsupported(transaction, "async"))


def sync_driver_connection(transaction: Any) -> psycopg.Connection[Any]:
    """The psycopg connection under `transaction` (psycopg or SQLAlchemy, sync)."""
    if isinstance(transaction, psycopg.Connection):
        return transaction
    if hasattr(transaction, "get_bind") and hasattr(transaction, "connection"):
        return sync_driver_connection(transaction.connection())  # SQLAlchemy Session
    raw = getattr(transaction, "connection", None)  # SQLAlchemy Connection
    if raw is not None and hasattr(raw, "driver_connection"):
        sync_conn: psycopg.Connection[Any] = _checked(raw.driver_connection, psycopg.Connection)
        return sync_conn
    raise ConfigurationError(_unsupported(transaction, "sync"))


def _checked(conn: Any, kind: type[Any]) -> Any:
    if not isinstance(conn, kind):
        raise ConfigurationError(
            f"transactional enqueue needs the psycopg (3) driver, got {type(conn).__name__}: "
            "use a postgresql+psycopg:// SQLAlchemy URL"
        )
    return conn


def _unsupported(transaction: Any, mode: str) -> str:
    return (
        f"cannot enqueue in a {type(transaction).__name__} ({mode}): pass a psycopg "
        f"{'AsyncConnection' if mode == 'async' else 'Connection'} or a SQLAlchemy "
        f"{'AsyncSession/AsyncConnection' if mode == 'async' else 'Session/Connection'}"
    )


def _require_transaction(conn: psycopg.AsyncConnection[Any] | psycopg.Connection[Any]) -> None:
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    if conn.autocommit and idle:
        raise ConfigurationError(
            "enqueue_in() needs an open transaction on this autocommit connection: "
            "call it inside `with conn.transaction():`"
        )


async def enqueue_in(
    conn: psycopg.AsyncConnection[Any], target: Target, jobs: Sequence[NewJob], now: float
) -> list[str]:
    """Insert `jobs` on `conn`, inside its current transaction."""
    check_new_jobs(jobs)
    _require_transaction(conn)
    extra = {"lease_owner": None, "lease_expires_at": None, "now": now, "channel": target.channel}
    try:
        cur = conn.cursor(row_factory=dict_row)
        pushed = await (await cur.execute(QUERIES["push_search_path"], _schema(target))).fetchone()
        assert pushed is not None
        ids, _ = await insert_jobs(conn, jobs, now, extra)
        await cur.execute(QUERIES["pop_search_path"], {"previous": pushed["previous"]})
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL store {target.url}: enqueue in transaction: {exc}") from exc
    return ids


def enqueue_in_sync(
    conn: psycopg.Connection[Any], target: Target, jobs: Sequence[NewJob], now: float
) -> list[str]:
    """`enqueue_in` for a synchronous connection (one statement: no unique keys)."""
    check_new_jobs(jobs)
    if any(job.unique_key for job in jobs):
        raise ValueError("unique keys are not supported by the synchronous enqueue_in")
    _require_transaction(conn)
    params = {
        **columns(jobs, now),
        "lease_owner": None,
        "lease_expires_at": None,
        "now": now,
        "channel": target.channel,
    }
    try:
        cur = conn.cursor(row_factory=dict_row)
        pushed = cur.execute(QUERIES["push_search_path"], _schema(target)).fetchone()
        assert pushed is not None
        cur.execute(QUERIES["insert_jobs"], params)
        cur.execute(QUERIES["pop_search_path"], {"previous": pushed["previous"]})
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL store {target.url}: enqueue in transaction: {exc}") from exc
    return [job.id for job in jobs]


def _schema(target: Target) -> dict[str, str]:
    return {"schema": sql.Identifier(target.schema).as_string()}
