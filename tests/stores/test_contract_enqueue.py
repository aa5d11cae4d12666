"""Store contract: enqueue — initial states, chains, unique keys and reservations."""

from __future__ import annotations

import asyncio

import pytest

from afterward.errors import TaskNotFound
from afterward.jobs import JobState
from afterward.stores import JobFilter, Store

from ._helpers import LEASE, Clock, acquire_one, complete, enqueue_one, new_chain, new_job


async def test_a_single_task_starts_queued_with_what_was_given(store: Store, clock: Clock) -> None:
    # Given a task with every optional field set
    job = new_job(
        queue="emails",
        priority=7,
        max_attempts=4,
        unique_key=None,
        options={"max_attempts": 4, "time_limit": 12.5},
    )
    # When it is enqueued
    ids = await store.enqueue([job], now=clock())
    # Then its id comes back and it is stored queued, due now, untouched
    assert ids == [job.id]
    stored = await store.get(job.id)
    assert stored.state is JobState.QUEUED
    assert (stored.function, stored.payload, stored.queue) == (job.function, job.payload, "emails")
    assert (stored.priority, stored.max_attempts, stored.attempts) == (7, 4, 0)
    assert stored.options == {"max_attempts": 4, "time_limit": 12.5}
    assert stored.run_at == clock()
    assert stored.created_at == clock()
    assert stored.lease_owner is None and stored.lease_expires_at is None
    assert stored.finished_at is None and stored.last_error is None
    assert (stored.chain_id, stored.prev_id, stored.next_id) == (None, None, None)
    assert stored.history == ()


async def test_a_task_due_in_the_future_starts_scheduled(store: Store, clock: Clock) -> None:
    # Given a task to run in a minute
    run_at = clock() + 60
    # When it is enqueued
    job_id = await enqueue_one(store, clock, run_at=run_at)
    # Then it is scheduled at that time
    stored = await store.get(job_id)
    assert stored.state is JobState.SCHEDULED
    assert stored.run_at == run_at


async def test_a_task_due_in_the_past_starts_queued(store: Store, clock: Clock) -> None:
    # Given a task whose run_at has already passed
    run_at = clock() - 60
    # When it is enqueued
    job_id = await enqueue_one(store, clock, run_at=run_at)
    # Then it is queued, keeping its run_at (it orders before newer tasks)
    stored = await store.get(job_id)
    assert stored.state is JobState.QUEUED
    assert stored.run_at == run_at


async def test_a_chain_starts_with_its_head_queued_and_the_rest_waiting(
    store: Store, clock: Clock
) -> None:
    # Given a chain of three tasks
    chain = new_chain(3)
    # When it is enqueued in one call
    ids = await store.enqueue(chain, now=clock())
    # Then the ids come back in order, the head is queued and the rest wait
    assert ids == [j.id for j in chain]
    first, second, third = [await store.get(i) for i in ids]
    assert [first.state, second.state, third.state] == [
        JobState.QUEUED,
        JobState.WAITING,
        JobState.WAITING,
    ]
    # And each task links to its neighbours
    assert (first.prev_id, first.next_id) == (None, second.id)
    assert (second.prev_id, second.next_id) == (first.id, third.id)
    assert (third.prev_id, third.next_id) == (second.id, None)
    assert {first.chain_id, second.chain_id, third.chain_id} == {chain[0].id}
    # And only the head can be acquired
    acquired = await store.acquire("w1", now=clock(), lease=LEASE, limit=10)
    assert [j.id for j in acquired] == [first.id]


async def test_a_chain_runs_in_order(store: Store, clock: Clock) -> None:
    # Given a chain of three tasks
    ids = await store.enqueue(new_chain(3), now=clock())
    # When a worker repeatedly takes everything due and completes it
    ran = []
    while jobs := await store.acquire("w1", now=clock(), lease=LEASE, limit=10):
        assert len(jobs) == 1, "only one task of a chain may be due at a time"
        ran.append(jobs[0].id)
        assert await complete(store, jobs[0].id, "w1", jobs[0].attempts, now=clock())
        clock.advance(1)
    # Then the tasks ran one after the other, in chain order
    assert ran == ids
    listed = await store.list(JobFilter(chain_id=ids[0]))
    assert {j.state for j in listed} == {JobState.SUCCEEDED}


async def test_a_chain_continued_by_a_later_call_runs_after_its_head(
    store: Store, clock: Clock
) -> None:
    # Given a chain's head enqueued alone, then a batch of its next two tasks and two
    # independent ones (the batch points back at a task stored before it)
    head, second, third = new_chain(3)
    await store.enqueue([head], now=clock())
    others = [new_job(), new_job()]
    await store.enqueue([second, third, *others], now=clock())
    # Then the head links forward to the later batch, whose chain waits behind it
    assert (await store.get(head.id)).next_id == second.id
    assert (await store.get(second.id)).state is JobState.WAITING
    # And a worker that takes everything due runs the head before the rest of its chain
    ran = []
    while jobs := await store.acquire("w1", now=clock(), lease=LEASE, limit=10):
        for job in jobs:
            ran.append(job.id)
            assert await complete(store, job.id, "w1", job.attempts, now=clock())
    assert ran.index(head.id) < ran.index(second.id) < ran.index(third.id)
    assert sorted(ran) == sorted(j.id for j in (head, second, third, *others))


async def test_unique_key_returns_the_unfinished_task(store: Store, clock: Clock) -> None:
    # Given a queued task holding a unique key
    first = await enqueue_one(store, clock, unique_key="report:42")
    # When another task with the same key is enqueued
    duplicate = new_job(unique_key="report:42")
    ids = await store.enqueue([duplicate], now=clock())
    # Then the existing task's id is returned and the new one is not stored
    assert ids == [first]
    with pytest.raises(TaskNotFound):
        await store.get(duplicate.id)
    # And the key still holds while the task runs
    job = await acquire_one(store, clock)
    assert await store.enqueue([new_job(unique_key="report:42")], now=clock()) == [first]
    # When the task finishes
    assert await complete(store, job.id, "w1", job.attempts, now=clock())
    # Then the key is free again
    again = new_job(unique_key="report:42")
    assert await store.enqueue([again], now=clock()) == [again.id]
    assert (await store.get(again.id)).state is JobState.QUEUED


async def test_unique_key_only_applies_to_the_same_key(store: Store, clock: Clock) -> None:
    # Given a task holding one unique key
    await enqueue_one(store, clock, unique_key="a")
    # When tasks with another key and with no key are enqueued
    other, keyless = new_job(unique_key="b"), new_job()
    ids = await store.enqueue([other, keyless], now=clock())
    # Then both are stored
    assert ids == [other.id, keyless.id]
    assert sum((await store.counts()).values()) == 3


async def test_an_empty_unique_key_is_a_key_like_any_other(store: Store, clock: Clock) -> None:
    # Given a task holding the empty string as its unique key
    first = await enqueue_one(store, clock, unique_key="")
    # When another task with the empty key, and one with no key, are enqueued
    keyless = new_job()
    ids = await store.enqueue([new_job(unique_key=""), keyless], now=clock())
    # Then the empty key holds like any other, and no key is no key
    assert ids == [first, keyless.id]
    assert (await store.get(first)).unique_key == ""


async def test_a_large_batch_is_stored_whole_and_counted(store: Store, clock: Clock) -> None:
    # Given a batch of 3,000 tasks over two queues and priorities (past any store's
    # chunking of one batch's index writes)
    low = [new_job(queue="a") for _ in range(1500)]
    high = [new_job(queue="b", priority=5) for _ in range(1500)]
    # When it is enqueued in one call
    ids = await store.enqueue([*low, *high], now=clock())
    # Then every task is stored, counted by queue, and the high lane is taken first
    assert ids == [j.id for j in (*low, *high)]
    counts = await store.counts()
    assert counts == {("a", JobState.QUEUED): 1500, ("b", JobState.QUEUED): 1500}
    taken = await store.acquire("w1", now=clock(), lease=LEASE, limit=1600)
    assert [j.id for j in taken[:1500]] == [j.id for j in high]
    assert [j.id for j in taken[1500:]] == [j.id for j in low[:100]]


async def test_a_reservation_hides_tasks_from_other_workers(store: Store, clock: Clock) -> None:
    # Given a task reserved for w1 for 30 seconds
    (job_id,) = await store.enqueue([new_job()], now=clock(), reserve_for="w1", lease=30)
    # When another worker looks for work during the reservation
    clock.advance(29)
    taken = await store.acquire("w2", now=clock(), lease=LEASE, limit=10)
    taken_by_id = await store.acquire("w2", now=clock(), lease=LEASE, limit=10, ids=[job_id])
    # Then it gets nothing, and the task is still queued
    assert taken == [] and taken_by_id == []
    assert (await store.get(job_id)).state is JobState.QUEUED
    # When the reservation has passed
    clock.advance(2)
    job = await acquire_one(store, clock, "w2")
    # Then any worker can take it
    assert (job.id, job.lease_owner, job.attempts) == (job_id, "w2", 1)


async def test_the_reserving_worker_acquires_by_id(store: Store, clock: Clock) -> None:
    # Given a chain reserved for w1
    ids = await store.enqueue(new_chain(2), now=clock(), reserve_for="w1", lease=30)
    # When w1 asks for the head by id
    job = await acquire_one(store, clock, "w1", lease=60, ids=[ids[0]])
    # Then it runs it under its own lease, as attempt 1
    assert (job.id, job.state, job.lease_owner) == (ids[0], JobState.RUNNING, "w1")
    assert job.attempts == 1
    assert job.lease_expires_at == clock() + 60
    # And the waiting task behind it cannot be acquired yet, even by id
    assert await store.acquire("w1", now=clock(), lease=LEASE, limit=1, ids=[ids[1]]) == []
    # When the head completes, w1 takes the next task by id while still reserved
    assert await complete(store, ids[0], "w1", 1, now=clock())
    assert (await acquire_one(store, clock, "w1", ids=[ids[1]])).id == ids[1]


async def test_a_burst_of_concurrent_calls_larger_than_any_pool_all_succeed(
    store: Store, clock: Clock
) -> None:
    # Given 300 requests committing their chains through one store at the same moment
    # (more than a store keeps connections: extra calls must wait, never fail)
    chains = [new_chain(2) for _ in range(300)]
    # When they all enqueue at once
    results = await asyncio.gather(*(store.enqueue(c, now=clock()) for c in chains))
    # Then every chain was stored
    assert results == [[job.id for job in chain] for chain in chains]
    counts = await store.counts()
    assert counts == {("default", JobState.QUEUED): 300, ("default", JobState.WAITING): 300}
