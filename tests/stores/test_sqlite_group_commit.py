"""SQLite store: concurrent writes share transactions (group commit), and stay separate in
their outcomes: one that raises undoes only its own changes."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from afterward.errors import InvalidTransition, StoreError
from afterward.jobs import JobState
from afterward.stores.sqlite import SQLiteStore
from afterward.stores.sqlite.connection import SQLiteConnection, _Write

from ._helpers import Clock, acquire_one, complete, new_chain, new_job


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'group.db'}")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def _count_commits(store: SQLiteStore) -> list[str]:
    commits: list[str] = []
    conn = store._db._conn
    assert conn is not None
    conn.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    return commits


async def test_concurrent_writes_share_commits(sqlite_store: SQLiteStore, clock: Clock) -> None:
    # Given 200 requests enqueueing their chains at the same moment
    commits = _count_commits(sqlite_store)
    chains = [new_chain(2) for _ in range(200)]
    # When they all enqueue at once
    await asyncio.gather(*(sqlite_store.enqueue(c, now=clock()) for c in chains))
    # Then all were stored with far fewer commits (fsyncs) than writes
    assert await sqlite_store.counts() == {
        ("default", JobState.QUEUED): 200,
        ("default", JobState.WAITING): 200,
    }
    assert 0 < len(commits) < 100


async def test_a_write_that_raises_undoes_only_its_own_changes(
    sqlite_store: SQLiteStore, clock: Clock
) -> None:
    # Given a running task, which cannot be cancelled
    running = await sqlite_store.enqueue([new_job()], now=clock())
    await acquire_one(sqlite_store, clock)
    # When its cancel races 50 enqueues (so they share transactions with it)
    jobs = [new_job() for _ in range(50)]
    outcomes = await asyncio.gather(
        *(sqlite_store.enqueue([j], now=clock()) for j in jobs[:25]),
        sqlite_store.cancel(running[0], now=clock()),
        *(sqlite_store.enqueue([j], now=clock()) for j in jobs[25:]),
        return_exceptions=True,
    )
    # Then the cancel alone failed, with its own error, and every enqueue was committed
    assert isinstance(outcomes[25], InvalidTransition)
    assert [o for n, o in enumerate(outcomes) if n != 25] == [[j.id] for j in jobs]
    assert (await sqlite_store.get(running[0])).state is JobState.RUNNING
    assert await sqlite_store.counts() == {
        ("default", JobState.QUEUED): 50,
        ("default", JobState.RUNNING): 1,
    }


async def test_a_failed_commit_fails_every_write_of_it(tmp_path: Path, clock: Clock) -> None:
    # Given a store whose file another connection holds locked past the busy timeout
    path = tmp_path / "locked.db"
    store = SQLiteStore(f"sqlite:///{path}")
    await store.open()
    conn = store._db._conn
    assert conn is not None
    conn.execute("PRAGMA busy_timeout = 50")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        # When several writes try to commit
        outcomes = await asyncio.gather(
            *(store.enqueue([new_job()], now=clock()) for _ in range(5)),
            return_exceptions=True,
        )
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    # Then each fails with a StoreError naming the cause, and nothing was stored
    assert all(isinstance(o, StoreError) and "locked" in str(o) for o in outcomes), outcomes
    assert await store.counts() == {}
    # And the store writes again once the lock is gone
    assert len(await store.enqueue([new_job()], now=clock())) == 1
    await store.close()


def _trace_levels(store: SQLiteStore) -> list[str]:
    """The synchronous level in force at each COMMIT, as the connection runs them."""
    conn = store._db._conn
    assert conn is not None
    levels: list[str] = []

    def note(sql: str) -> None:
        if sql == "COMMIT":
            level = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
            levels.append(level[conn.execute("PRAGMA synchronous").fetchone()["synchronous"]])

    conn.set_trace_callback(note)
    return levels


async def test_commits_that_accept_or_finish_work_are_fsynced_and_takes_are_not(
    sqlite_store: SQLiteStore, clock: Clock
) -> None:
    # Given a store at its default level (FULL), tracing the level of each commit
    levels = _trace_levels(sqlite_store)
    # When a task is enqueued, taken, renewed, then completed
    (job_id,) = await sqlite_store.enqueue([new_job()], now=clock())
    job = await acquire_one(sqlite_store, clock)
    await sqlite_store.extend_leases("w1", [job_id], now=clock(), lease=30)
    assert await complete(sqlite_store, job_id, "w1", job.attempts, now=clock())
    # Then the enqueue and the outcome were committed at FULL (fsynced), and taking the task
    # and renewing its lease at NORMAL: lost on a power loss, they only make it run again
    assert levels == ["FULL", "NORMAL", "NORMAL", "FULL"]


async def test_a_commit_holding_any_durable_write_is_fsynced(sqlite_store: SQLiteStore) -> None:
    # Given a trace of the level of each commit
    levels = _trace_levels(sqlite_store)

    loop = asyncio.get_running_loop()

    def write(durable: bool) -> _Write[None]:
        return _Write(lambda conn: None, loop, loop.create_future(), durable)

    # When groups of writes are committed: not durable alone, mixed, then durable alone
    for group in ([False, False], [False, True, False], [True], [False]):
        sqlite_store._db._commit_group([write(d) for d in group])
    # Then a group is fsynced (FULL) as soon as one of its writes is durable
    assert levels == ["NORMAL", "FULL", "FULL", "NORMAL"]


async def test_a_write_that_races_close_fails_with_store_error(tmp_path: Path) -> None:
    # Given a connection whose close() lands just after a write let go of the queue's lock
    # (before it handed the commit to the writer thread)
    db = SQLiteConnection(str(tmp_path / "race.db"), synchronous="FULL")
    await db.open()
    queue_lock = db._writes_lock

    class CloseOnRelease:
        def __enter__(self) -> None:
            queue_lock.acquire()

        def __exit__(self, *exc: object) -> None:
            queue_lock.release()
            db._writes_lock = queue_lock
            writer, db._writer = db._writer, None
            assert writer is not None
            writer.shutdown()

    db._writes_lock = CloseOnRelease()  # type: ignore[assignment]
    # When the write goes on
    # Then it fails as a closed store, at once, and leaves no write queued
    with pytest.raises(StoreError, match="closed"):
        await asyncio.wait_for(db.write(lambda conn: conn.execute("SELECT 1")), 5)
    assert db._writes == [] and not db._committing
    await db.close()
