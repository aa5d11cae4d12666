"""PostgreSQL: tasks enqueued inside the application's own transaction commit or roll
back with it (psycopg and SQLAlchemy, sync and async)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg import sql
from servers import drop_store_data, postgres_url
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from afterward import Afterward, ConfigurationError, JobState
from afterward.stores import JobFilter

from . import apps

pytestmark = pytest.mark.postgres


class Rollback(Exception):
    """Raised to roll a transaction back."""


@pytest.fixture
async def afterward(tmp_path: object) -> AsyncIterator[Afterward]:
    url = postgres_url(tmp_path)  # type: ignore[arg-type]
    instance = Afterward(url=url, execution="workers")
    await instance.open()
    base = url.partition("?")[0]
    schema = url.partition("schema=")[2]
    async with await psycopg.AsyncConnection.connect(base, autocommit=True) as conn:
        await conn.execute(
            sql.SQL("CREATE TABLE {}.orders (id int PRIMARY KEY)").format(sql.Identifier(schema))
        )
    yield instance
    await instance.aclose()
    drop_store_data(url)


def _parts(afterward: Afterward) -> tuple[str, str]:
    url = afterward.settings.url
    return url.partition("?")[0], url.partition("schema=")[2]


async def _orders_and_tasks(afterward: Afterward) -> tuple[set[int], set[int]]:
    base, schema = _parts(afterward)
    async with await psycopg.AsyncConnection.connect(base) as conn:
        cur = await conn.execute(sql.SQL("SELECT id FROM {}.orders").format(sql.Identifier(schema)))
        orders = {row[0] for row in await cur.fetchall()}
    jobs = await afterward.store.list(JobFilter(), limit=100_000)
    return orders, {json.loads(j.payload)["args"][0] for j in jobs}


async def test_1000_transactions_30_percent_rolled_back(afterward: Afterward) -> None:
    # Given an application connection of its own (not afterward's)
    base, schema = _parts(afterward)
    insert = sql.SQL("INSERT INTO {}.orders (id) VALUES (%s)").format(sql.Identifier(schema))
    async with await psycopg.AsyncConnection.connect(base, autocommit=True) as conn:
        # When 1,000 transactions each write an order and enqueue its task, 30 % rolling back
        for order_id in range(1000):
            try:
                async with conn.transaction():
                    await conn.execute(insert, (order_id,))
                    await afterward.enqueue_in(conn, apps.ship_order, order_id)
                    if order_id % 10 < 3:
                        raise Rollback
            except Rollback:
                pass
    # Then every committed order has its task, and no rolled-back order has one
    orders, tasks = await _orders_and_tasks(afterward)
    assert len(orders) == 700
    assert tasks - orders == set()  # tasks for rolled-back rows: 0
    assert orders - tasks == set()  # committed rows without their task: 0


async def test_no_worker_sees_a_task_before_its_transaction_commits(afterward: Afterward) -> None:
    base, _ = _parts(afterward)
    async with await psycopg.AsyncConnection.connect(base) as conn:
        # Given a task enqueued in a transaction that is still open
        task_id = await afterward.enqueue_in(conn, apps.ship_order, 1)
        # When a worker looks for work, Then it finds nothing
        assert await afterward.store.acquire("w", now=1e10, lease=30, limit=10) == []
        # When the transaction commits, Then the task is there to take
        await conn.commit()
    (job,) = await afterward.store.acquire("w", now=1e10, lease=30, limit=10)
    assert job.id == task_id


async def test_sqlalchemy_async_session(afterward: Afterward) -> None:
    base, schema = _parts(afterward)
    engine = create_async_engine(base.replace("postgresql://", "postgresql+psycopg://"))
    try:
        for order_id, commit in ((1, True), (2, False)):
            async with AsyncSession(engine) as session:
                await session.execute(text(f'INSERT INTO "{schema}".orders VALUES ({order_id})'))
                await afterward.enqueue_in(session, apps.ship_order, order_id)
                await (session.commit() if commit else session.rollback())
    finally:
        await engine.dispose()
    assert await _orders_and_tasks(afterward) == ({1}, {1})


async def test_sqlalchemy_sync_session_and_psycopg_sync(afterward: Afterward) -> None:
    base, schema = _parts(afterward)

    def write() -> None:
        engine = create_engine(base.replace("postgresql://", "postgresql+psycopg://"))
        try:
            for order_id, commit in ((1, True), (2, False)):
                with Session(engine) as session:
                    session.execute(text(f'INSERT INTO "{schema}".orders VALUES ({order_id})'))
                    afterward.enqueue_in_sync(session, apps.ship_order, order_id)
                    session.commit() if commit else session.rollback()
        finally:
            engine.dispose()
        with psycopg.connect(base) as conn:  # commits on a clean exit
            conn.execute(f'INSERT INTO "{schema}".orders VALUES (3)')
            afterward.enqueue_in_sync(conn, apps.ship_order, 3)

    await asyncio.to_thread(write)
    assert await _orders_and_tasks(afterward) == ({1, 3}, {1, 3})
    # And the committed tasks are queued for workers
    states = {j.state for j in await afterward.store.list(JobFilter())}
    assert states == {JobState.QUEUED}


async def test_autocommit_connection_without_a_transaction_is_refused(
    afterward: Afterward,
) -> None:
    base, _ = _parts(afterward)
    async with await psycopg.AsyncConnection.connect(base, autocommit=True) as conn:
        with pytest.raises(ConfigurationError, match="open transaction"):
            await afterward.enqueue_in(conn, apps.ship_order, 1)


async def test_other_stores_say_transactional_enqueue_needs_postgres(tmp_path: object) -> None:
    sqlite = Afterward(url=f"sqlite:///{tmp_path}/x.db", execution="workers")
    with pytest.raises(ConfigurationError, match="PostgreSQL"):
        await sqlite.enqueue_in(object(), apps.ship_order, 1)
