"""PostgreSQL store: what the conformance suite cannot see about URLs, schemas,
migrations, errors, connections and opening and closing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from servers import POSTGRES_URL, drop_store_data, postgres_url

from afterward.errors import SchemaTooNew, StoreError
from afterward.jobs import JobState
from afterward.stores import Store, store_from_url
from afterward.stores.postgres.target import Target
from afterward.stores.sql_files import load_migrations, load_schema

from ._helpers import Clock, new_job
from ._postgres import BOUND, backends, raw_connection, schema_of, terminate, until

pytestmark = pytest.mark.postgres


def _threads(schema: str) -> list[threading.Thread]:
    """The loop threads of the stores on `schema` still running."""
    return [t for t in threading.enumerate() if t.name == f"afterward-postgres-{schema}"]


# -- the URL and schemas ----------------------------------------------------------------


def test_the_url_is_split_between_afterward_and_psycopg() -> None:
    # Given a URL with a password, our schema parameter and libpq parameters
    url = "postgresql://app:s3cret@db:5433/prod?sslmode=require&schema=jobs&options=-c%20x%3D1"
    target = Target.from_url(url)
    # Then psycopg gets everything but the schema, verbatim
    assert target.schema == "jobs"
    assert (
        target.conninfo == "postgresql://app:s3cret@db:5433/prod?sslmode=require&options=-c%20x%3D1"
    )
    # And messages never show a password, in the address or as a parameter
    assert (
        target.url == "postgresql://app@db:5433/prod?sslmode=require&schema=jobs&options=-c%20x%3D1"
    )
    assert "pw" not in Target.from_url("postgresql://db/prod?password=pw").url
    # And the schema defaults to "afterward"
    assert Target.from_url("postgresql://db/prod").schema == "afterward"


async def test_schemas_in_one_database_do_not_see_each_other(
    pg: Store, tmp_path: Path, clock: Clock
) -> None:
    # Given a second store in another schema of the same database
    other_url = postgres_url(tmp_path)
    other = store_from_url(other_url)
    await other.open()
    try:
        # When each enqueues a task
        (mine,) = await pg.enqueue([new_job(queue="a")], now=clock())
        await other.enqueue([new_job(queue="b")], now=clock())
        # Then each sees and hands out only its own
        assert await pg.counts() == {("a", JobState.QUEUED): 1}
        assert await other.counts() == {("b", JobState.QUEUED): 1}
        assert [j.id for j in await pg.acquire("w", now=clock(), lease=30, limit=10)] == [mine]
    finally:
        await other.close()
        drop_store_data(other_url)


# -- migrations ---------------------------------------------------------------------------


def _catalog(conn: psycopg.Connection[Any], schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """Tables, columns, constraints and indexes of `schema`, with its name left out."""
    return {
        "columns": conn.execute(
            "SELECT table_name, ordinal_position, column_name, data_type, is_nullable,"
            " column_default, collation_name FROM information_schema.columns"
            " WHERE table_schema = %s ORDER BY 1, 2",
            [schema],
        ).fetchall(),
        "constraints": conn.execute(
            "SELECT t.relname, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c"
            " JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
            " WHERE n.nspname = %s ORDER BY 1, 2",
            [schema],
        ).fetchall(),
        "indexes": conn.execute(
            "SELECT tablename, indexname, replace(indexdef, %s, '') FROM pg_indexes"
            " WHERE schemaname = %s ORDER BY 1, 2",
            [f"{schema}.", schema],
        ).fetchall(),
    }


def test_fresh_schema_equals_all_migrations_applied() -> None:
    # Given one schema made from schema.sql and one from every migration in order
    fresh, migrated = (f"aw_test_{uuid.uuid4().hex[:10]}" for _ in range(2))
    scripts = {
        fresh: [load_schema("afterward.stores.postgres")],
        migrated: [m.sql for m in load_migrations("afterward.stores.postgres")],
    }
    try:
        with raw_connection() as conn:
            for schema, parts in scripts.items():
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
                for part in parts:
                    conn.execute(part)
            # Then they hold the same tables, columns, constraints and indexes
            assert _catalog(conn, fresh) == _catalog(conn, migrated)
            tables = {row[0] for row in _catalog(conn, fresh)["columns"]}
            assert {"afterward_jobs", "afterward_attempts"} <= tables
    finally:
        for schema in scripts:
            drop_store_data(f"{POSTGRES_URL}?schema={schema}")


def _versions(url: str) -> list[int]:
    with raw_connection() as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema_of(url))))
        return [v for (v,) in conn.execute("SELECT version FROM afterward_schema_version")]


async def test_schema_newer_than_the_code_is_refused(pg_url: str) -> None:
    # Given a store whose schema was migrated by a newer afterward
    store = store_from_url(pg_url)
    await store.open()
    await store.close()
    with raw_connection() as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema_of(pg_url))))
        conn.execute("INSERT INTO afterward_schema_version VALUES (999)")
    # When it is opened, Then it is refused with a message that says to upgrade
    with pytest.raises(SchemaTooNew, match="upgrade afterward"):
        await store_from_url(pg_url).open()
    # And nothing was left running
    assert not _threads(schema_of(pg_url))


async def test_reopening_keeps_data_and_version(pg_url: str, clock: Clock) -> None:
    # Given a store that was opened, given a task and closed, then opened again
    store = store_from_url(pg_url)
    await store.open()
    (job_id,) = await store.enqueue([new_job()], now=clock())
    await store.close()
    await store.open()
    try:
        # Then the task is still there and the schema was not migrated twice
        assert (await store.get(job_id)).state is JobState.QUEUED
    finally:
        await store.close()
    assert _versions(pg_url) == [load_migrations("afterward.stores.postgres")[-1].version]


def test_many_processes_opening_a_new_schema_at_once_all_succeed(pg_url: str) -> None:
    # Given 8 processes that open the same, not yet existing, schema at the same time
    code = (
        "import asyncio, sys\n"
        "from afterward.stores import store_from_url\n"
        "async def main():\n"
        "    s = store_from_url(sys.argv[1])\n"
        "    await s.open()\n"
        "    await s.close()\n"
        "asyncio.run(main())\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, pg_url]) for _ in range(8)]
    # Then every one succeeds and the schema was created exactly once
    assert [p.wait(60) for p in procs] == [0] * 8
    assert _versions(pg_url) == [load_migrations("afterward.stores.postgres")[-1].version]


# -- errors and connections ----------------------------------------------------------------


async def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    # Given a store URL with a password, on a port nothing listens on
    store = store_from_url("postgresql://root:s3cret@127.0.0.1:1/test?schema=nowhere")
    # When it is opened, Then a StoreError (not a psycopg error) names it, password hidden
    with pytest.raises(StoreError) as raised:
        await store.open()
    assert not isinstance(raised.value, psycopg.Error)
    assert "127.0.0.1:1" in str(raised.value) and "s3cret" not in str(raised.value)
    assert "s3cret" not in store.url
    # And nothing was left running
    assert not _threads("nowhere")


async def test_database_errors_surface_as_store_errors(
    pg: Store, pg_url: str, clock: Clock
) -> None:
    # Given a stored task
    job = new_job()
    await pg.enqueue([job], now=clock())
    # When a task with the same id is enqueued, Then the violation is a StoreError
    with pytest.raises(StoreError, match="duplicate key") as raised:
        await pg.enqueue([job], now=clock())
    assert not isinstance(raised.value, psycopg.Error)
    # And when the schema disappears under the store, reads fail the same way
    drop_store_data(pg_url)
    with pytest.raises(StoreError, match="does not exist"):
        await pg.counts()


async def test_now_is_the_database_clock(pg: Store) -> None:
    # When the store's clock is read, Then it is the server's (here: this machine's) time
    assert abs(await pg.now() - time.time()) < 5


async def test_open_and_close_are_idempotent(pg_url: str, clock: Clock) -> None:
    # Given a store opened twice
    store = store_from_url(pg_url)
    await store.open()
    await store.open()
    await store.enqueue([new_job()], now=clock())
    # When it is closed twice, Then it is closed, and using it is a StoreError
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="not open"):
        await store.counts()
    assert not _threads(schema_of(pg_url))


async def test_connections_the_server_closed_while_idle_are_replaced(
    pg: Store, pg_url: str, clock: Clock
) -> None:
    # Given a store whose pooled connections the server terminated (as a restart does)
    await pg.enqueue([new_job()], now=clock())
    app = schema_of(pg_url)
    terminate(backends(app))
    await until(lambda: not backends(app), "the connections to end")
    # When it is used again, Then it works, on fresh connections
    assert await pg.counts() == {("default", JobState.QUEUED): 1}


async def test_close_releases_a_waiting_worker(pg_url: str, clock: Clock) -> None:
    # Given a worker waiting for work with a long timeout
    store = store_from_url(pg_url)
    await store.open()
    await store.acquire("w1", now=clock(), lease=30, limit=1)
    waiting: asyncio.Task[object] = asyncio.create_task(store.wait_for_work(timeout=60))
    await asyncio.sleep(0.1)
    # When the store is closed, Then the wait ends promptly
    await store.close()
    assert await asyncio.wait_for(waiting, BOUND) is None
