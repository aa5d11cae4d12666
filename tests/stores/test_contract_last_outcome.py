"""Store contract: a task's `last_outcome`, how its last attempt that counted ended.

Written whenever an attempt closes (complete: succeeded; fail: failed; recover: lost) and
returned with every task (`acquire`, `get`, `list`); a hand-back (`release`) does not count
and leaves it as it was, so a task lost with its worker is acquired as a suspect until an
attempt of it ends otherwise (`afterward.worker.loop`). Tasks stored before there was a
`last_outcome` read as the migrations (SQLite 0003, PostgreSQL 0004) fill it in, on Redis
too, where there is no migration: see the last section.
"""

from __future__ import annotations

import contextlib
import sqlite3

import psycopg
import redis.asyncio
from psycopg import sql

from afterward import Outcome
from afterward.stores import JobFilter, Store, store_from_url
from afterward.stores.postgres.target import Target
from afterward.stores.redis.target import parse_redis_url
from afterward.stores.sqlite.connection import path_from_url
from faults.corrupt_rows import kind_of

from ._helpers import LEASE, Clock, acquire_one, complete, enqueue_one, failure, new_job


async def _seen(store: Store, job_id: str) -> list[Outcome | None]:
    """`last_outcome` as `get` and `list` show it (they must agree)."""
    got = await store.get(job_id)
    (listed,) = await store.list(JobFilter(id_prefix=job_id))
    return [got.last_outcome, listed.last_outcome]


async def _lose(store: Store, clock: Clock, job_id: str) -> None:
    """Acquire `job_id` under a 10 s lease, let the lease expire, and recover it."""
    await acquire_one(store, clock, "w-lost", lease=10, ids=[job_id])
    clock.advance(11)
    assert await store.recover(now=clock()) == 1


async def test_a_task_no_attempt_of_which_ended_has_none(store: Store, clock: Clock) -> None:
    # Given a task just stored
    job_id = await enqueue_one(store, clock)
    # Then it has no last outcome, stored or acquired, nor while it runs
    assert await _seen(store, job_id) == [None, None]
    assert (await acquire_one(store, clock)).last_outcome is None
    assert await _seen(store, job_id) == [None, None]


async def test_complete_writes_succeeded(store: Store, clock: Clock) -> None:
    # Given a running task
    job_id = await enqueue_one(store, clock)
    await acquire_one(store, clock)
    # When it completes
    assert await complete(store, job_id, "w1", 1, now=clock())
    # Then its last outcome is succeeded, a typed value
    stored = await store.get(job_id)
    assert stored.last_outcome is Outcome.SUCCEEDED
    assert stored.history[-1].outcome is Outcome.SUCCEEDED
    assert await _seen(store, job_id) == [Outcome.SUCCEEDED] * 2


async def test_fail_writes_failed_and_the_next_acquire_shows_it(store: Store, clock: Clock) -> None:
    # Given a running task
    job_id = await enqueue_one(store, clock)
    await acquire_one(store, clock)
    # When its attempt fails, to be retried at once
    assert await store.fail(job_id, "w1", 1, failure(retry_at=clock()), now=clock())
    # Then it failed, and is acquired again with that last outcome
    assert await _seen(store, job_id) == [Outcome.FAILED] * 2
    again = await acquire_one(store, clock, "w2")
    assert (again.id, again.last_outcome) == (job_id, Outcome.FAILED)
    assert [a.outcome for a in (await store.get(job_id)).history] == [Outcome.FAILED, None]


async def test_fail_for_good_writes_failed(store: Store, clock: Clock) -> None:
    job_id = await enqueue_one(store, clock)
    await acquire_one(store, clock)
    assert await store.fail(job_id, "w1", 1, failure(), now=clock())
    assert await _seen(store, job_id) == [Outcome.FAILED] * 2


async def test_a_recovered_task_is_acquired_lost(store: Store, clock: Clock) -> None:
    # Given a task whose lease expired, and one whose worker died
    expired = await enqueue_one(store, clock)
    await acquire_one(store, clock, "w1", lease=10, ids=[expired])
    dead = await enqueue_one(store, clock)
    await acquire_one(store, clock, "w2", lease=600, ids=[dead])
    clock.advance(11)
    # When recovery takes them back
    assert await store.recover(now=clock(), dead_workers=["w2"]) == 2
    # Then each is lost, and is acquired again lost (a suspect), by ids or from the queue
    assert await _seen(store, expired) == [Outcome.LOST] * 2
    assert await _seen(store, dead) == [Outcome.LOST] * 2
    by_id = await acquire_one(store, clock, "w3", ids=[dead])
    from_queue = await acquire_one(store, clock, "w3")
    assert (by_id.id, by_id.last_outcome) == (dead, Outcome.LOST)
    assert (from_queue.id, from_queue.last_outcome) == (expired, Outcome.LOST)


async def test_a_task_lost_on_its_last_attempt_and_retried_is_acquired_lost(
    store: Store, clock: Clock
) -> None:
    # Given a task lost on its only attempt, so failed for good, then retried by hand
    job_id = await enqueue_one(store, clock, max_attempts=1)
    await _lose(store, clock, job_id)
    assert await _seen(store, job_id) == [Outcome.LOST] * 2
    await store.retry(job_id, now=clock())
    # Then it is acquired still lost: nothing ran since
    assert (await acquire_one(store, clock, "w2")).last_outcome is Outcome.LOST


async def test_release_leaves_the_last_outcome_as_it_was(store: Store, clock: Clock) -> None:
    # Given a task never run before, and one lost with its worker, both running
    fresh = await enqueue_one(store, clock)
    suspect = await enqueue_one(store, clock)
    await _lose(store, clock, suspect)
    taken = await store.acquire("w1", now=clock(), lease=LEASE, limit=2)
    assert {j.id: j.last_outcome for j in taken} == {fresh: None, suspect: Outcome.LOST}
    # When both are handed back (a graceful stop, or suspects a worker will not run)
    assert await store.release("w1", [fresh, suspect], now=clock()) == 2
    # Then the hand-back is an attempt's outcome, not the task's: the fresh one still
    # has none, and the lost one is acquired again as lost, still a suspect
    assert (await store.get(suspect)).history[-1].outcome is Outcome.RELEASED
    assert await _seen(store, fresh) == [None, None]
    assert await _seen(store, suspect) == [Outcome.LOST] * 2
    again = await store.acquire("w2", now=clock(), lease=LEASE, limit=2)
    assert {j.id: j.last_outcome for j in again} == {fresh: None, suspect: Outcome.LOST}


async def test_a_suspect_that_then_ends_otherwise_is_one_no_more(
    store: Store, clock: Clock
) -> None:
    # Given two tasks lost with their worker, acquired again
    ok, bad = await enqueue_one(store, clock), await enqueue_one(store, clock)
    for job_id in (ok, bad):
        await _lose(store, clock, job_id)
    await store.acquire("w2", now=clock(), lease=LEASE, limit=2)
    # When one completes and the other fails, to be retried
    assert await complete(store, ok, "w2", 2, now=clock())
    assert await store.fail(bad, "w2", 2, failure(retry_at=clock()), now=clock())
    # Then their last outcomes say so, and the failed one is acquired no longer lost
    assert await _seen(store, ok) == [Outcome.SUCCEEDED] * 2
    assert await _seen(store, bad) == [Outcome.FAILED] * 2
    assert (await acquire_one(store, clock, "w3")).last_outcome is Outcome.FAILED


async def test_complete_and_acquire_returns_the_last_outcome(store: Store, clock: Clock) -> None:
    # Given a running task, and a task lost with its worker
    running = await enqueue_one(store, clock)
    await acquire_one(store, clock, "w1", ids=[running])
    lost = await enqueue_one(store, clock)
    await _lose(store, clock, lost)
    await store.extend_leases("w1", [running], now=clock(), lease=LEASE)
    # When the worker reports the first and takes the next in one call
    done, taken = await store.complete_and_acquire(
        "w1", [(running, 1)], now=clock(), lease=LEASE, limit=2
    )
    # Then the one it took comes lost, and the completed one succeeded
    assert done == {running}
    assert [(j.id, j.last_outcome) for j in taken] == [(lost, Outcome.LOST)]
    assert await _seen(store, running) == [Outcome.SUCCEEDED] * 2


# -- tasks stored before there was a last outcome -----------------------------------------

_SQLITE_BEFORE = 2
"""The SQLite schema before migration 0003 added `last_outcome`."""
_POSTGRES_BEFORE = 3
"""The PostgreSQL schema before migration 0004 added `last_outcome`."""

SHAPES: dict[str, Outcome | None] = {
    "fresh": None,
    "succeeded": Outcome.SUCCEEDED,
    "failed": Outcome.FAILED,
    "lost": Outcome.LOST,
    "lost_released": Outcome.LOST,
    "lost_failed": Outcome.FAILED,
    "lost_running": Outcome.LOST,
    "lost_history_gone": Outcome.LOST,
}
"""Tasks whose attempts ended in each way that matters (``lost_history_gone`` loses its
attempts on the way back to older code), and the last outcome each must have."""


async def _stored_in_every_shape(store: Store, clock: Clock) -> dict[str, str]:
    """A task in each of `SHAPES`: its id by shape."""
    stored = await store.enqueue([new_job() for _ in SHAPES], now=clock())
    ids = dict(zip(SHAPES, stored, strict=True))
    lost = [ids[n] for n in SHAPES if n.startswith("lost")]
    await store.acquire("w-dead", now=clock(), lease=10, limit=len(lost), ids=lost)
    clock.advance(11)
    assert await store.recover(now=clock()) == len(lost)
    for name in ("succeeded", "failed", "lost_released", "lost_failed", "lost_running"):
        attempt = (await acquire_one(store, clock, "w2", ids=[ids[name]])).attempts
        if name == "succeeded":
            assert await complete(store, ids[name], "w2", attempt, now=clock())
        elif name.endswith("failed"):
            later = failure(retry_at=clock() + 60)
            assert await store.fail(ids[name], "w2", attempt, later, now=clock())
        elif name == "lost_released":
            assert await store.release("w2", [ids[name]], now=clock()) == 1
    return ids


async def _as_older_code_left_it(url: str, gone: str) -> None:
    """Take `last_outcome` out of the store at `url` as if older code had written it (and
    the attempts of task `gone` with it): its column and schema version, or Redis's field."""
    kind = kind_of(url)
    if kind == "sqlite":
        with contextlib.closing(sqlite3.connect(path_from_url(url))) as conn, conn:
            conn.execute("DELETE FROM afterward_attempts WHERE job_id = ?", (gone,))
            conn.execute("ALTER TABLE afterward_jobs DROP COLUMN last_outcome")
            conn.execute(f"PRAGMA user_version = {_SQLITE_BEFORE:d}")
        return
    if kind == "postgres":
        target = Target.from_url(url)
        async with await psycopg.AsyncConnection.connect(target.conninfo, autocommit=True) as pg:
            await pg.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(target.schema)))
            await pg.execute("DELETE FROM afterward_attempts WHERE job_id = %s", (gone,))
            await pg.execute("ALTER TABLE afterward_jobs DROP COLUMN last_outcome")
            await pg.execute("DELETE FROM afterward_schema_version")
            await pg.execute(
                "INSERT INTO afterward_schema_version VALUES (%s)", (_POSTGRES_BEFORE,)
            )
        return
    parsed = parse_redis_url(url)
    client = redis.asyncio.Redis.from_url(parsed.client_url, decode_responses=True)
    try:
        await client.delete(f"{parsed.prefix}:attempts:{gone}")
        async for key in client.scan_iter(f"{parsed.prefix}:job:*"):
            await client.hdel(key, "last_outcome")
    finally:
        await client.aclose()


async def test_tasks_stored_by_older_code_read_as_the_upgrade_fills_them_in(
    store_url: str, clock: Clock
) -> None:
    # Given tasks in every shape, written by this code
    store = store_from_url(store_url)
    await store.open()
    try:
        ids = await _stored_in_every_shape(store, clock)
        assert {n: (await store.get(i)).last_outcome for n, i in ids.items()} == SHAPES
    finally:
        await store.close()
    # When the store is taken back to how older code left it, and opened by this code
    await _as_older_code_left_it(store_url, ids["lost_history_gone"])
    upgraded = store_from_url(store_url)
    await upgraded.open()
    try:
        # Then every task reads as before: from its last attempt that counted, or, where
        # its attempts are gone, from its last error
        assert {n: (await upgraded.get(i)).last_outcome for n, i in ids.items()} == SHAPES
        listed = {j.id: j.last_outcome for j in await upgraded.list(JobFilter(), limit=100)}
        assert {n: listed[i] for n, i in ids.items()} == SHAPES
        # And the due ones lost with their worker are acquired as suspects
        taken = await upgraded.acquire("w3", now=clock(), lease=LEASE, limit=100)
        names = {i: n for n, i in ids.items()}
        assert {names[j.id]: j.last_outcome for j in taken} == {
            n: SHAPES[n] for n in ("fresh", "lost", "lost_released", "lost_history_gone")
        }
    finally:
        await upgraded.close()
