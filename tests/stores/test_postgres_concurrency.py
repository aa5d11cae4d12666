"""PostgreSQL store: races that need a second connection, LISTEN/NOTIFY wake-ups, the
caller's transactions and the commit level of takes."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Set
from typing import Any

import psycopg
import pytest
from psycopg import sql
from servers import POSTGRES_URL

from afterward.errors import InvalidOption
from afterward.jobs import JobState
from afterward.stores import Store, store_from_url
from afterward.stores.base import TransactionalStore
from afterward.stores.postgres.queries import QUERIES

from ._helpers import Clock, acquire_one, complete, failure, new_chain, new_job
from ._postgres import BOUND, backends, raw_connection, schema_of, terminate, until

pytestmark = pytest.mark.postgres


async def _settle(store: Store, clock: Clock, app: str, *, not_on: Set[int] = frozenset()) -> None:
    """Have `store` listening (on a backend not in `not_on`) with every wake-up so far
    used up, as an idle worker is: a wait then runs out its whole timeout."""
    await store.acquire("idle", now=clock(), lease=30, limit=1)
    await until(lambda: bool(backends(app, listening=True) - not_on), "the listener")
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
        retrying.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema_of(pg_url))))
        retrying.execute("SELECT 1 FROM afterward_jobs WHERE id = %s FOR UPDATE", [ids[0]])
        retrying.execute("UPDATE afterward_jobs SET state = 'waiting' WHERE id = %s", [ids[1]])
        # When the head completes meanwhile (and waits for the lock), then the retry commits
        completing = asyncio.create_task(complete(pg, ids[0], "w1", 1, now=clock()))
        await until(lambda: _waiting_for_a_lock(schema_of(pg_url)), "complete to wait")
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
        completing.execute(
            sql.SQL("SET search_path TO {}").format(sql.Identifier(schema_of(pg_url)))
        )
        completing.execute("SELECT 1 FROM afterward_jobs WHERE id = %s FOR UPDATE", [ids[0]])
        # When the runner renews both leases meanwhile (and waits for the head's lock)
        extending = asyncio.create_task(pg.extend_leases("w1", ids, now=clock(), lease=60))
        await until(lambda: _waiting_for_a_lock(schema_of(pg_url)), "extend to wait")
        # Then the completion can still lock the next task: no deadlock, nobody aborted
        completing.execute("SELECT 1 FROM afterward_jobs WHERE id = %s FOR UPDATE", [ids[1]])
        completing.commit()
    assert await asyncio.wait_for(extending, BOUND) == set(ids)


def _waiting_for_a_lock(app: str) -> bool:
    query = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = %s AND wait_event_type = 'Lock'"
    )
    with raw_connection() as conn:
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
        await _settle(pg, clock, schema_of(pg_url))
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
        await _settle(pg, clock, schema_of(pg_url))
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
    app = schema_of(pg_url)
    await _settle(pg, clock, app)
    first = backends(app, listening=True)
    terminate(first)
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
    await _settle(pg, clock, schema_of(pg_url))
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
    with raw_connection() as conn, conn.transaction():
        conn.execute(
            sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema_of(pg_url)))
        )
        # When the store's take statement runs in a transaction of its own
        taken = conn.execute(QUERIES[query], params).fetchall()
        # Then it takes the task, and that transaction commits at the level asked for
        # (`acquire` alone relaxes it; with completions in the same transaction it may not)
        assert [row[0] for row in taken] == [job_id]
        assert conn.execute("SHOW synchronous_commit").fetchone() == (level,)
    assert (await pg.counts())[("default", JobState.RUNNING)] == 1
