"""PostgreSQL store: its tables are vacuumed when the server's autovacuum will not do it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from servers import POSTGRES_URL, drop_store_data, postgres_url

from afterward.stores.postgres import PostgresStore

from ._helpers import new_job

pytestmark = pytest.mark.postgres

BOUND = 30.0
"""A generous bound for "soon": only a hang fails, never a slow machine."""


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    url = postgres_url(tmp_path)
    yield url
    drop_store_data(url)


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def _tables(store: PostgresStore) -> psycopg.Connection[Any]:
    conn = psycopg.connect(POSTGRES_URL, autocommit=True)
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(store.schema)))
    return conn


def _stats(conn: psycopg.Connection[Any]) -> tuple[int, Any]:
    """(dead row versions, time of the last manual vacuum) of the jobs table."""
    row = conn.execute(
        "SELECT n_dead_tup, last_vacuum FROM pg_stat_user_tables"
        " WHERE schemaname = current_schema() AND relname = 'afterward_jobs'"
    ).fetchone()
    assert row is not None
    return int(row[0]), row[1]


async def _wait(check: Any, what: str) -> None:
    """Poll `check` without blocking the loop (the store's vacuum runs on it)."""
    deadline = time.monotonic() + BOUND
    while not check():
        assert time.monotonic() < deadline, f"{what} within {BOUND:.0f} s"
        await asyncio.sleep(0.1)


async def _dead_rows(store: PostgresStore, conn: psycopg.Connection[Any], n: int) -> None:
    """`n` tasks stored, then every row rewritten once: `n` dead row versions."""
    await store.enqueue([new_job() for _ in range(n)], now=time.time())
    conn.execute("UPDATE afterward_jobs SET priority = priority")
    await _wait(lambda: _stats(conn)[0] >= n, "the server counted the dead rows")


async def test_a_table_autovacuum_skips_is_vacuumed_once_many_rows_are_dead(
    store: PostgresStore,
) -> None:
    # Given a jobs table that autovacuum will not clean, holding 12,000 dead row versions
    with _tables(store) as conn:
        conn.execute("ALTER TABLE afterward_jobs SET (autovacuum_enabled = false)")
        await _dead_rows(store, conn, 12_000)
        # When the store's periodic recovery runs
        await store.recover(now=time.time())
        # Then the store vacuums the table in the background, and the dead rows are gone
        await _wait(lambda: _stats(conn)[1] is not None, "the table was vacuumed")
        assert _stats(conn)[0] < 1_000


async def test_a_few_dead_rows_are_left_for_later(store: PostgresStore) -> None:
    # Given a table autovacuum skips, with fewer dead rows than the threshold (10,000)
    with _tables(store) as conn:
        conn.execute("ALTER TABLE afterward_jobs SET (autovacuum_enabled = false)")
        await _dead_rows(store, conn, 2_000)
        # When recovery runs, Then no vacuum is started
        await store.recover(now=time.time())
        running = store._vacuum._running
        assert running is not None  # the check ran...
        await running
        assert _stats(conn)[1] is None  # ...and found nothing to do
