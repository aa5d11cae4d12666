"""Store contract: acquire — limits, order, queues, due times, attempts, atomicity."""

from __future__ import annotations

import asyncio
from collections import Counter

from afterward.jobs import JobState
from afterward.stores import Store, store_from_url

from ._helpers import LEASE, Clock, acquire_one, enqueue_one, failure, new_chain, new_job


async def test_acquire_takes_at_most_limit(store: Store, clock: Clock) -> None:
    # Given five queued tasks
    ids = await store.enqueue([new_job() for _ in range(5)], now=clock())
    # When a worker acquires two at a time
    batches = []
    while jobs := await store.acquire("w1", now=clock(), lease=LEASE, limit=2):
        batches.append(jobs)
    # Then it gets 2, 2, 1 tasks: every task once
    assert [len(b) for b in batches] == [2, 2, 1]
    assert sorted(j.id for b in batches for j in b) == sorted(ids)


async def test_acquire_by_ids_takes_at_most_limit(store: Store, clock: Clock) -> None:
    # Given three queued tasks
    ids = await store.enqueue([new_job() for _ in range(3)], now=clock())
    # When a worker asks for all three by id with a limit of one
    jobs = await store.acquire("w1", now=clock(), lease=LEASE, limit=1, ids=ids)
    # Then it gets one, and the others stay queued
    assert len(jobs) == 1
    counts = await store.counts()
    assert counts.get(("default", JobState.RUNNING), 0) == 1
    assert counts.get(("default", JobState.QUEUED), 0) == 2


async def test_acquire_orders_by_priority_then_run_at(store: Store, clock: Clock) -> None:
    # Given due tasks of several priorities and ages
    now = clock()
    low_old = new_job(priority=0, run_at=now - 30)
    high_new = new_job(priority=5, run_at=now - 10)
    high_old = new_job(priority=5, run_at=now - 20)
    mid_now = new_job(priority=1)
    await store.enqueue([low_old, high_new, high_old, mid_now], now=now)
    # When a worker takes two of them
    first_two = await store.acquire("w1", now=now, lease=LEASE, limit=2)
    # Then it gets the two highest-priority ones, oldest first
    assert [j.id for j in first_two] == [high_old.id, high_new.id]
    # And then the rest, by priority before age
    rest = await store.acquire("w1", now=now, lease=LEASE, limit=10)
    assert [j.id for j in rest] == [mid_now.id, low_old.id]


async def test_acquire_one_at_a_time_follows_the_same_order(store: Store, clock: Clock) -> None:
    # Given due tasks enqueued in scrambled order
    now = clock()
    jobs = [
        new_job(priority=-1, run_at=now - 50),
        new_job(priority=2, run_at=now - 1),
        new_job(priority=2, run_at=now - 2),
        new_job(priority=0, run_at=now - 3),
    ]
    await store.enqueue(jobs, now=now)
    # When a worker takes them one by one
    order = [(await acquire_one(store, clock)).id for _ in jobs]
    # Then they come highest priority first, then oldest run_at
    assert order == [jobs[2].id, jobs[1].id, jobs[3].id, jobs[0].id]


async def test_acquire_only_takes_from_the_given_queues(store: Store, clock: Clock) -> None:
    # Given tasks in three queues
    a, b, c = new_job(queue="a"), new_job(queue="b"), new_job(queue="c")
    await store.enqueue([a, b, c], now=clock())
    # When a worker serving queues a and c acquires
    jobs = await store.acquire("w1", now=clock(), lease=LEASE, limit=10, queues=["a", "c"])
    # Then it gets only their tasks
    assert sorted(j.id for j in jobs) == sorted([a.id, c.id])
    assert (await store.get(b.id)).state is JobState.QUEUED
    # And a worker serving every queue (queues=None) gets the rest
    assert [j.id for j in await store.acquire("w2", now=clock(), lease=LEASE, limit=10)] == [b.id]


async def test_scheduled_tasks_are_taken_only_once_due(store: Store, clock: Clock) -> None:
    # Given a task scheduled a minute from now
    job_id = await enqueue_one(store, clock, run_at=clock() + 60)
    # When a worker looks before it is due
    clock.advance(59)
    early = await store.acquire("w1", now=clock(), lease=LEASE, limit=10)
    early_by_id = await store.acquire("w1", now=clock(), lease=LEASE, limit=10, ids=[job_id])
    # Then it gets nothing
    assert early == [] and early_by_id == []
    assert (await store.get(job_id)).state is JobState.SCHEDULED
    # When its time comes
    clock.advance(1)
    job = await acquire_one(store, clock)
    # Then it is taken
    assert job.id == job_id and job.state is JobState.RUNNING


async def test_acquire_counts_an_attempt_and_opens_its_record(store: Store, clock: Clock) -> None:
    # Given a queued task
    job_id = await enqueue_one(store, clock)
    # When a worker acquires it with a 45 s lease
    job = await acquire_one(store, clock, "w1", lease=45)
    # Then it is running for that worker, as attempt 1, under that lease
    assert (job.id, job.state, job.attempts) == (job_id, JobState.RUNNING, 1)
    assert job.lease_owner == "w1"
    assert job.lease_expires_at == clock() + 45
    # And an open attempt record exists
    (attempt,) = (await store.get(job_id)).history
    assert (attempt.number, attempt.worker, attempt.started_at) == (1, "w1", clock())
    assert attempt.finished_at is None and attempt.outcome is None


async def test_each_acquire_opens_a_new_attempt(store: Store, clock: Clock) -> None:
    # Given a task that failed once and was scheduled for a retry
    await enqueue_one(store, clock)
    first = await acquire_one(store, clock, "w1")
    assert await store.fail(first.id, "w1", 1, failure(retry_at=clock()), now=clock())
    # When another worker acquires it again
    clock.advance(1)
    second = await acquire_one(store, clock, "w2")
    # Then it is attempt 2, and the history holds both attempts in order
    assert second.attempts == 2
    history = (await store.get(first.id)).history
    assert [(a.number, a.worker) for a in history] == [(1, "w1"), (2, "w2")]
    assert history[0].outcome == "failed" and history[1].outcome is None


async def test_waiting_tasks_are_never_acquired(store: Store, clock: Clock) -> None:
    # Given a chain whose head is running
    ids = await store.enqueue(new_chain(2), now=clock())
    await acquire_one(store, clock)
    # When workers look for more work, generally or by id
    general = await store.acquire("w2", now=clock(), lease=LEASE, limit=10)
    by_id = await store.acquire("w2", now=clock(), lease=LEASE, limit=10, ids=[ids[1]])
    # Then the waiting task is not handed out
    assert general == [] and by_id == []
    assert (await store.get(ids[1])).state is JobState.WAITING


async def test_concurrent_acquires_never_share_a_task(
    store: Store, store_url: str, clock: Clock
) -> None:
    # Given 40 queued tasks and three store instances on the same URL
    ids = await store.enqueue([new_job() for _ in range(40)], now=clock())
    others = [store_from_url(store_url) for _ in range(2)]
    for other in others:
        await other.open()
    try:
        stores = [store, *others]
        # When 30 workers acquire at once, spread over the instances
        batches = await asyncio.gather(
            *(stores[n % 3].acquire(f"w{n}", now=clock(), lease=LEASE, limit=3) for n in range(30))
        )
        # And whatever is left is swept up afterwards
        leftover = await store.acquire("sweeper", now=clock(), lease=LEASE, limit=100)
    finally:
        for other in others:
            await other.close()
    # Then no task was handed out twice, and every task was handed out
    handed = Counter(j.id for batch in [*batches, leftover] for j in batch)
    assert max(handed.values()) == 1
    assert sorted(handed) == sorted(ids)
    # And each task is held by the worker it was given to, on attempt 1
    for n, batch in enumerate(batches):
        assert len(batch) <= 3
        for job in batch:
            stored = await store.get(job.id)
            assert (stored.lease_owner, stored.attempts) == (f"w{n}", 1)
            assert len(stored.history) == 1
