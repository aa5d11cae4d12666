"""PostgreSQL store: what the conformance suite cannot see — schemas, migrations, errors,
connections, event loops, LISTEN/NOTIFY and races that need a second connection."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Set
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from servers import POSTGRES_URL, drop_store_data, postgres_url

from afterward.errors import InvalidOption, SchemaTooNew, StoreError
from afterward.jobs import JobState
from afterward.stores import Store, store_from_url
from afterward.stores.base import TransactionalStore
from afterward.stores.postgres.queries import QUERIES
from afterward.stores.postgres.target import Target
from afterward.stores.sql_files import load_migrations, load_schema

from ._helpers import Clock, acquire_one, complete, failure, new_chain, new_job

pytestmark = pytest.mark.postgres

BOUND = 10.0
"""A generous bound for "promptly": only a hang fails, never a slow machine."""


def _schema(url: str) -> str:
    return Target.from_url(url).schema


def _raw() -> psycopg.Connection[Any]:
    return psycopg.connect(POSTGRES_URL, autocommit=True)


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh schema's URL, naming its connections (application_name) after the schema."""
    url = postgres_url(tmp_path)
    yield f"{url}&application_name={_schema(url)}"
    drop_store_data(url)


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[Store]:
    store = store_from_url(pg_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def _backends(app: str, *, listening: bool = False) -> set[int]:
    """The server processes serving connections named `app` (only the listener's: idle
    after its LISTEN)."""
    query = "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
    if listening:
        query += " AND query LIKE 'LISTEN%%' AND state = 'idle'"
    with _raw() as conn:
        return {pid for (pid,) in conn.execute(query, [app]).fetchall()}


def _terminate(pids: set[int]) -> None:
    with _raw() as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", [pid])


def _threads(schema: str) -> list[threading.Thread]:
    """The loop threads of the stores on `schema` still running."""
    return [t for t in threading.enumerate() if t.name == f"afterward-postgres-{schema}"]


async def _until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _settle(store: Store, clock: Clock, app: str, *, not_on: Set[int] = frozenset()) -> None:
    """Have `store` listening (on a backend not in `not_on`) with every wake-up so far
    used up, as an idle worker is: a wait then runs out its whole timeout."""
    await store.acquire("idle", now=clock(), lease=30, limit=1)
    await _until(lambda: bool(_backends(app, listening=True) - not_on), "the listener")
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        await store.acquire("idle", now=clock(), lease=30, limit=1)
        started = time.monotonic()
        await store.wait_for_work(0.2)
        if time.monotonic() - started >= 0.19:
            await store.acquire("idle", now=clock(), lease=30, limit=1)
            return
    raise AssertionError("the store kept waking up with nothing to do")


async def _wakes_on(store: Store, action: Callable[[], Awaitable[object]]) -> None:
    """`store.wait_for_work` blocks until `action` runs, then returns promptly."""
    waiting = asyncio.create_task(store.wait_for_work(timeout=60))
    await asyncio.sleep(0.3)
    assert not waiting.done(), "the wait returned before anything happened"
    await action()
    await asyncio.wait_for(waiting, BOUND)


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
        with _raw() as conn:
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
    with _raw() as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(_schema(url))))
        return [v for (v,) in conn.execute("SELECT version FROM afterward_schema_version")]


async def test_schema_newer_than_the_code_is_refused(pg_url: str) -> None:
    # Given a store whose schema was migrated by a newer afterward
    store = store_from_url(pg_url)
    await store.open()
    await store.close()
    with _raw() as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(_schema(pg_url))))
        conn.execute("INSERT INTO afterward_schema_version VALUES (999)")
    # When it is opened, Then it is refused with a message that says to upgrade
    with pytest.raises(SchemaTooNew, match="upgrade afterward"):
        await store_from_url(pg_url).open()
    # And nothing was left running
    assert not _threads(_schema(pg_url))


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
    assert not _threads(_schema(pg_url))


async def test_connections_the_server_closed_while_idle_are_replaced(
    pg: Store, pg_url: str, clock: Clock
) -> None:
    # Given a store whose pooled connections the server terminated (as a restart does)
    await pg.enqueue([new_job()], now=clock())
    app = _schema(pg_url)
    _terminate(_backends(app))
    await _until(lambda: not _backends(app), "the connections to end")
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


# -- races ---------------------------------------------------------------------------------


async def test_concurrent_enqueues_of_one_unique_key_store_one_task(
    pg: Store, pg_url: str, clock: Clock
) -> None:
    # Given three store instances on the same schema
    others = [store_from_url(pg_url) for _ in range(2)]
    for other in others:
        await other.open()
    try:
        stores = [pg, *others]
        # When 15 tasks with the same unique key are enqueued at once through them
        calls = [
            stores[n % 3].enqueue([new_job(unique_key="only-one")], now=clock()) for n in range(15)
        ]
        results = await asyncio.gather(*calls)
    finally:
        for other in others:
            await other.close()
    # Then one task was stored, and every call got its id
    assert len({ids[0] for ids in results}) == 1
    assert await pg.counts() == {("default", JobState.QUEUED): 1}


async def test_complete_releases_a_next_task_retried_at_the_same_time(
    pg: Store, pg_url: str, clock: Clock
) -> None:
    # Given a chain whose head runs and whose next task was cancelled
    ids = await pg.enqueue(new_chain(2), now=clock())
    await acquire_one(pg, clock)
    assert await pg.cancel(ids[1], now=clock()) == [ids[1]]
    # And a transaction doing what retry does to it: lock the head, set the task waiting
    with psycopg.connect(POSTGRES_URL) as retrying:
        retrying.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(_schema(pg_url))))
        retrying.execute("SELECT 1 FROM afterward_jobs WHERE id = %s FOR UPDATE", [ids[0]])
        retrying.execute("UPDATE afterward_jobs SET state = 'waiting' WHERE id = %s", [ids[1]])
        # When the head completes meanwhile (and waits for the lock), then the retry commits
        completing = asyncio.create_task(complete(pg, ids[0], "w1", 1, now=clock()))
        await _until(lambda: _waiting_for_a_lock(_schema(pg_url)), "complete to wait")
        retrying.commit()
    # Then the completion saw the retried task and released it
    assert await asyncio.wait_for(completing, BOUND) is True
    assert (await pg.get(ids[1])).state is JobState.QUEUED


async def test_extending_a_chains_leases_while_its_head_completes_cannot_deadlock(
    pg: Store, pg_url: str, clock: Clock
) -> None:
    # Given a reserved chain whose head runs (its row now lies after the next task's on disk)
    ids = await pg.enqueue(new_chain(2), now=clock(), reserve_for="w1", lease=60)
    await pg.acquire("w1", now=clock(), lease=60, limit=1, ids=ids[:1])
    # And a transaction doing what complete does: lock the head first, then the next task
    with psycopg.connect(POSTGRES_URL) as completing:
        completing.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(_schema(pg_url))))
        completing.execute("SELECT 1 FROM afterward_jobs WHERE id = %s FOR UPDATE", [ids[0]])
        # When the runner renews both leases meanwhile (and waits for the head's lock)
        extending = asyncio.create_task(pg.extend_leases("w1", ids, now=clock(), lease=60))
        await _until(lambda: _waiting_for_a_lock(_schema(pg_url)), "extend to wait")
        # Then the completion can still lock the next task: no deadlock, nobody aborted
        completing.execute("SELECT 1 FROM afterward_jobs WHERE id = %s FOR UPDATE", [ids[1]])
        completing.commit()
    assert await asyncio.wait_for(extending, BOUND) == set(ids)


def _waiting_for_a_lock(app: str) -> bool:
    query = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = %s AND wait_event_type = 'Lock'"
    )
    with _raw() as conn:
        row = conn.execute(query, [app]).fetchone()
    return bool(row and row[0])


# -- LISTEN/NOTIFY ---------------------------------------------------------------------------


async def test_wait_for_work_wakes_on_another_instances_chain_release_and_retry(
    pg: Store, pg_url: str, clock: Clock
) -> None:
    # Given a worker idle on one instance, and another instance running a chain's head
    producer = store_from_url(pg_url)
    await producer.open()
    try:
        ids = await producer.enqueue(new_chain(2), now=clock())
        head = await acquire_one(producer, clock, "p", ids=[ids[0]])
        await _settle(pg, clock, _schema(pg_url))
        # When the head completes, Then the idle worker wakes
        await _wakes_on(pg, lambda: complete(producer, head.id, "p", 1, now=clock()))
        # And when the next task fails with a retry, it wakes again
        nxt = await acquire_one(producer, clock, "p", ids=[ids[1]])
        await pg.acquire("idle", now=clock(), lease=30, limit=1)
        retry = failure(retry_at=clock() + 1)
        await _wakes_on(pg, lambda: producer.fail(nxt.id, "p", 1, retry, now=clock()))
    finally:
        await producer.close()


async def test_a_chain_reserved_for_a_web_process_wakes_no_other_worker(
    pg: Store, pg_url: str, clock: Clock
) -> None:
    # Given a worker idle on one instance, and a web process on another
    web = store_from_url(pg_url)
    await web.open()
    try:
        await _settle(pg, clock, _schema(pg_url))
        # When the web process stores a chain reserved for itself and runs its head
        ids = await web.enqueue(new_chain(2), now=clock(), reserve_for="web", lease=30)
        head = await acquire_one(web, clock, "web", ids=[ids[0]])
        assert await complete(web, head.id, "web", 1, now=clock())
        # Then the idle worker's wait runs out its whole timeout: nothing it may take
        started = time.monotonic()
        await pg.wait_for_work(0.5)
        assert time.monotonic() - started >= 0.45
        # And a task anyone may take still wakes it
        await _wakes_on(pg, lambda: web.enqueue([new_job()], now=clock()))
    finally:
        await web.close()


async def test_the_listener_reconnects_after_its_connection_dies(
    pg: Store, pg_url: str, clock: Clock
) -> None:
    # Given an idle worker whose listening connection the server terminated
    app = _schema(pg_url)
    await _settle(pg, clock, app)
    first = _backends(app, listening=True)
    _terminate(first)
    # When it has reconnected
    await _settle(pg, clock, app, not_on=first)
    # Then it wakes on another instance's enqueue again
    producer = store_from_url(pg_url)
    await producer.open()
    try:
        await _wakes_on(pg, lambda: producer.enqueue([new_job()], now=clock()))
    finally:
        await producer.close()


async def test_a_batch_in_the_callers_transaction_is_stored_and_wakes_at_its_commit(
    pg: Store, pg_url: str, clock: Clock
) -> None:
    # Given an idle worker, and a chain of three plus fifty independent tasks enqueued in
    # a transaction of the caller's own connection (a batch the store streams by COPY)
    assert isinstance(pg, TransactionalStore)
    await _settle(pg, clock, _schema(pg_url))
    batch = [*new_chain(3), *(new_job() for _ in range(50))]
    async with await psycopg.AsyncConnection.connect(POSTGRES_URL) as conn:
        ids = await pg.enqueue_in(conn, batch, now=clock())
        # When the caller rolls back, Then nothing is stored
        await conn.rollback()
        assert await pg.counts() == {}
        # When the caller enqueues it again and commits, Then the idle worker wakes
        assert await pg.enqueue_in(conn, batch, now=clock()) == ids
        await _wakes_on(pg, conn.commit)
    # And every task is stored, the chain linked in order behind its queued head
    assert await pg.counts() == {("default", JobState.QUEUED): 51, ("default", JobState.WAITING): 2}
    head, second, third = [await pg.get(i) for i in ids[:3]]
    assert (head.next_id, second.prev_id, second.next_id) == (second.id, head.id, third.id)


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"run_at": math.nan}, "run_at must be a time"), ({"queue": ""}, "queue must be a name")],
)
async def test_the_callers_sync_transaction_refuses_a_value_no_worker_accepts(
    pg: Store, clock: Clock, fields: dict[str, Any], message: str
) -> None:
    # Given a batch holding one task with a value no worker accepts
    assert isinstance(pg, TransactionalStore)
    batch = [new_job(), new_job()._replace(**fields)]
    # When it is enqueued in a transaction of the caller's synchronous connection, Then
    # the store refuses it before writing, as its other enqueues do
    with (
        psycopg.connect(POSTGRES_URL) as conn,
        conn.transaction(),
        pytest.raises(InvalidOption, match=message),
    ):
        pg.enqueue_in_sync(conn, batch, now=clock())
    assert await pg.counts() == {}


@pytest.mark.parametrize(("relaxed", "level"), [(True, "off"), (False, "on")])
@pytest.mark.parametrize("query", ["acquire_due", "acquire_ids"])
async def test_a_take_alone_commits_without_waiting_for_the_wal_flush(
    pg: Store, pg_url: str, clock: Clock, query: str, relaxed: bool, level: str
) -> None:
    # Given a due task
    (job_id,) = await pg.enqueue([new_job()], now=clock())
    params = {"worker": "w", "now": clock(), "expires": clock() + 30, "limit": 1}
    params.update(relaxed=relaxed, queues=None, ids=[job_id])
    with _raw() as conn, conn.transaction():
        conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(_schema(pg_url))))
        # When the store's take statement runs in a transaction of its own
        taken = conn.execute(QUERIES[query], params).fetchall()
        # Then it takes the task, and that transaction commits at the level asked for
        # (`acquire` alone relaxes it; with completions in the same transaction it may not)
        assert [row[0] for row in taken] == [job_id]
        assert conn.execute("SHOW synchronous_commit").fetchone() == (level,)
    assert (await pg.counts())[("default", JobState.RUNNING)] == 1
