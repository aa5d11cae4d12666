"""Store contract: the life of a task — complete, fail, release, recover, cancel, retry."""

from __future__ import annotations

import pytest

from afterward.errors import InvalidTransition, TaskNotFound
from afterward.jobs import JobState
from afterward.stores import Store

from ._helpers import (
    LEASE,
    Clock,
    acquire_one,
    complete,
    complete_many,
    enqueue_one,
    failure,
    new_chain,
    new_job,
)


async def test_complete_succeeds_and_queues_the_next_task(store: Store, clock: Clock) -> None:
    # Given a chain of three whose head is running
    ids = await store.enqueue(new_chain(3), now=clock())
    head = await acquire_one(store, clock)
    # When the head completes
    clock.advance(5)
    assert await complete(store, head.id, "w1", 1, now=clock())
    # Then it succeeded, its attempt is closed, and only the next task is queued
    done = await store.get(head.id)
    assert (done.state, done.finished_at, done.lease_owner) == (JobState.SUCCEEDED, clock(), None)
    (attempt,) = done.history
    assert (attempt.outcome, attempt.finished_at, attempt.error) == ("succeeded", clock(), None)
    assert (await store.get(ids[1])).state is JobState.QUEUED
    assert (await store.get(ids[2])).state is JobState.WAITING


async def test_complete_many_completes_each_held_task_and_leaves_out_the_rest(
    store: Store, clock: Clock
) -> None:
    # Given w1 running a chain's head and two single tasks, and w2 running one more
    chain = await store.enqueue(new_chain(2), now=clock())
    singles = await store.enqueue([new_job(), new_job(), new_job()], now=clock())
    mine = await store.acquire("w1", now=clock(), lease=LEASE, limit=3)
    theirs = await acquire_one(store, clock, "w2")
    assert {j.id for j in mine} | {theirs.id} == {chain[0], *singles}
    # When w1 reports its three, one with a wrong attempt number, plus w2's task
    wrong = next(j for j in mine if j.id != chain[0])
    reported = [(j.id, 2 if j is wrong else 1) for j in mine] + [(theirs.id, 1)]
    clock.advance(1)
    done = await complete_many(store, "w1", reported, now=clock())
    # Then exactly w1's correctly reported tasks succeeded, and the chain moved on
    expected = {j.id for j in mine} - {wrong.id}
    assert done == expected
    for job_id in expected:
        assert (await store.get(job_id)).state is JobState.SUCCEEDED
    assert (await store.get(wrong.id)).state is JobState.RUNNING
    assert (await store.get(theirs.id)).state is JobState.RUNNING
    assert (await store.get(chain[1])).state is JobState.QUEUED
    # And an empty report changes nothing
    assert await complete_many(store, "w1", [], now=clock()) == set()


async def test_complete_and_acquire_reports_then_takes_in_one_call(
    store: Store, clock: Clock
) -> None:
    # Given w1 running two tasks, one reported with a wrong attempt number, and two more due
    running = await store.enqueue([new_job(), new_job()], now=clock())
    await store.acquire("w1", now=clock(), lease=LEASE, limit=2)
    clock.advance(1)
    due = await store.enqueue([new_job(), new_job()], now=clock())
    # When w1 reports both and asks for up to 5 more
    clock.advance(1)
    reported = [(running[0], 1), (running[1], 2)]
    done, taken = await store.complete_and_acquire(
        "w1", reported, now=clock(), lease=LEASE, limit=5
    )
    # Then the fenced report is left out, the other succeeded, and the due tasks were taken
    assert done == {running[0]}
    assert (await store.get(running[0])).state is JobState.SUCCEEDED
    assert (await store.get(running[1])).state is JobState.RUNNING
    assert [j.id for j in taken] == due
    assert all((j.state, j.lease_owner, j.attempts) == (JobState.RUNNING, "w1", 1) for j in taken)
    assert [a.number for a in (await store.get(due[0])).history] == [1]
    # And with nothing to report it is a plain acquire; with nothing due it only reports
    assert await store.complete_and_acquire("w1", [], now=clock(), lease=LEASE, limit=5) == (
        set(),
        [],
    )
    done, taken = await store.complete_and_acquire(
        "w1", [(due[0], 1)], now=clock(), lease=LEASE, limit=0
    )
    assert (done, taken) == ({due[0]}, [])


async def test_complete_and_acquire_takes_the_next_task_the_completion_released(
    store: Store, clock: Clock
) -> None:
    # Given a chain of three reserved for w1 (as a web process enqueues it), its head running
    ids = await store.enqueue(new_chain(3), now=clock(), reserve_for="w1", lease=LEASE)
    (head,) = await store.acquire("w1", now=clock(), lease=LEASE, limit=1, ids=ids[:1])
    # When w1 completes the head and asks for the next task by id
    clock.advance(1)
    done, taken = await store.complete_and_acquire(
        "w1", [(head.id, head.attempts)], now=clock(), lease=LEASE, limit=1, ids=ids[1:2]
    )
    # Then the head succeeded and the second task is running under w1, the third waits
    assert done == {head.id}
    assert [(j.id, j.state, j.lease_owner) for j in taken] == [(ids[1], JobState.RUNNING, "w1")]
    assert (await store.get(ids[2])).state is JobState.WAITING
    # And another worker cannot take the next one's place by id
    done, taken = await store.complete_and_acquire(
        "w2", [], now=clock(), lease=LEASE, limit=1, ids=ids[2:]
    )
    assert (done, taken) == (set(), [])


async def test_fail_with_retry_at_schedules_the_task(store: Store, clock: Clock) -> None:
    # Given a running task
    job_id = await enqueue_one(store, clock)
    await acquire_one(store, clock, "w1")
    # When it fails with a retry in 30 s
    retry_at = clock() + 30
    assert await store.fail(job_id, "w1", 1, failure("E: one", retry_at=retry_at), now=clock())
    # Then it is scheduled then, not finished, with its error noted
    stored = await store.get(job_id)
    assert (stored.state, stored.run_at, stored.finished_at) == (JobState.SCHEDULED, retry_at, None)
    assert (stored.last_error, stored.lease_owner, stored.attempts) == ("E: one", None, 1)
    # And it cannot be acquired before it is due
    clock.advance(29)
    assert await store.acquire("w2", now=clock(), lease=LEASE, limit=10) == []
    # When it is due, Then it is acquired as attempt 2
    clock.advance(1)
    again = await acquire_one(store, clock, "w2")
    assert (again.id, again.attempts) == (job_id, 2)


async def test_fail_for_good_leaves_the_chain_waiting(store: Store, clock: Clock) -> None:
    # Given a chain of three whose head is running
    ids = await store.enqueue(new_chain(3), now=clock())
    await acquire_one(store, clock)
    # When the head fails with no retry
    assert await store.fail(ids[0], "w1", 1, failure("E: final"), now=clock())
    # Then it failed, finished now, and the rest of the chain keeps waiting
    head = await store.get(ids[0])
    assert (head.state, head.finished_at, head.last_error) == (JobState.FAILED, clock(), "E: final")
    assert [(await store.get(i)).state for i in ids[1:]] == [JobState.WAITING] * 2
    assert await store.acquire("w1", now=clock(), lease=LEASE, limit=10) == []


async def test_every_attempt_keeps_its_error_and_traceback(store: Store, clock: Clock) -> None:
    # Given a task with three attempts
    job_id = await enqueue_one(store, clock, max_attempts=3)
    # When each attempt fails with its own error, the last one for good
    for n in (1, 2, 3):
        job = await acquire_one(store, clock, f"w{n}")
        retry_at = None if n == 3 else clock() + 1
        oops = failure(f"E: {n}", f"Traceback {n}", retry_at=retry_at)
        assert await store.fail(job_id, f"w{n}", job.attempts, oops, now=clock())
        clock.advance(1)
    # Then the history holds every attempt's error and traceback, in order
    stored = await store.get(job_id)
    assert stored.state is JobState.FAILED and stored.last_error == "E: 3"
    assert [(a.number, a.worker, a.outcome, a.error, a.traceback) for a in stored.history] == [
        (n, f"w{n}", "failed", f"E: {n}", f"Traceback {n}") for n in (1, 2, 3)
    ]
    assert all(a.finished_at is not None for a in stored.history)


async def test_release_hands_back_without_spending_an_attempt(store: Store, clock: Clock) -> None:
    # Given a task with 2 attempts, running for w1; When w2, then w1 release it
    job_id = await enqueue_one(store, clock, max_attempts=2)
    await acquire_one(store, clock, "w1")
    assert await store.release("w2", [job_id], now=clock()) == 0
    assert await store.release("w1", [job_id], now=clock()) == 1
    # Then it is queued again with one more attempt allowed; attempts did not go down
    stored = await store.get(job_id)
    assert (stored.state, stored.lease_owner) == (JobState.QUEUED, None)
    assert (stored.attempts, stored.max_attempts) == (1, 3)
    assert [a.outcome for a in stored.history] == ["released"]
    # And the next acquire is attempt 2, with two attempts still to go
    again = await acquire_one(store, clock, "w2")
    assert (again.attempts, again.max_attempts - again.attempts) == (2, 1)


async def test_release_drops_reservations(store: Store, clock: Clock) -> None:
    # Given a chain reserved for w1 for a minute
    ids = await store.enqueue(new_chain(2), now=clock(), reserve_for="w1", lease=60)
    # When w1 hands it back without running it
    released = await store.release("w1", ids, now=clock())
    # Then no running task was handed back, but another worker can take the head at once
    assert released == 0
    assert (await acquire_one(store, clock, "w2")).id == ids[0]
    assert (await store.get(ids[1])).lease_owner is None


async def test_recover_requeues_a_task_whose_lease_expired(store: Store, clock: Clock) -> None:
    # Given a task running for w1 under a 10 s lease, and one under a long lease
    job_id = await enqueue_one(store, clock, max_attempts=3)
    await acquire_one(store, clock, "w1", lease=10)
    other = await enqueue_one(store, clock)
    healthy = await acquire_one(store, clock, "w2", lease=100, ids=[other])
    # When recovery runs before and after the short lease expired
    clock.advance(10)
    assert await store.recover(now=clock()) == 0
    clock.advance(1)
    taken = await store.recover(now=clock())
    # Then only the expired task was taken back: queued, the attempt counted as lost
    assert taken == 1
    stored = await store.get(job_id)
    assert (stored.state, stored.lease_owner, stored.attempts) == (JobState.QUEUED, None, 1)
    (attempt,) = stored.history
    assert attempt.outcome == "lost" and attempt.error and attempt.finished_at == clock()
    assert (await store.get(healthy.id)).state is JobState.RUNNING
    # And it can be acquired again at once
    assert (await acquire_one(store, clock, "w3")).id == job_id


async def test_recover_fails_a_task_out_of_attempts(store: Store, clock: Clock) -> None:
    # Given a task on its last attempt whose lease expired
    job_id = await enqueue_one(store, clock, max_attempts=1)
    await acquire_one(store, clock, "w1", lease=10)
    clock.advance(11)
    # When recovery runs
    assert await store.recover(now=clock()) == 1
    # Then the task failed for good
    stored = await store.get(job_id)
    assert (stored.state, stored.finished_at) == (JobState.FAILED, clock())
    assert stored.last_error and [a.outcome for a in stored.history] == ["lost"]


async def test_recover_takes_back_from_dead_workers_at_once(store: Store, clock: Clock) -> None:
    # Given tasks running for w1 and w2 under long leases
    await store.enqueue([new_job(), new_job()], now=clock())
    mine = await acquire_one(store, clock, "w1", lease=600)
    theirs = await acquire_one(store, clock, "w2", lease=600)
    assert sorted(await store.lease_holders()) == ["w1", "w2"]
    # When recovery is told w1 died
    taken = await store.recover(now=clock(), dead_workers=["w1"])
    # Then w1's task is queued again and w2's keeps running
    assert taken == 1
    assert (await store.get(mine.id)).state is JobState.QUEUED
    assert (await store.get(theirs.id)).state is JobState.RUNNING
    assert await store.lease_holders() == ["w2"]


async def test_cancel_cancels_the_rest_of_the_chain(store: Store, clock: Clock) -> None:
    # Given two chains of three
    first = await store.enqueue(new_chain(3), now=clock())
    second = await store.enqueue(new_chain(3), now=clock())
    # When the head of one and the middle of the other are cancelled
    cancelled_head = await store.cancel(first[0], now=clock())
    cancelled_middle = await store.cancel(second[1], now=clock())
    # Then each cancel reports what it cancelled: the task and everything behind it
    assert cancelled_head == first
    assert cancelled_middle == second[1:]
    assert {(await store.get(i)).state for i in first} == {JobState.CANCELLED}
    assert (await store.get(first[0])).finished_at == clock()
    assert [(await store.get(i)).state for i in second] == [
        JobState.QUEUED,
        JobState.CANCELLED,
        JobState.CANCELLED,
    ]


async def test_a_cancelled_next_task_stays_cancelled(store: Store, clock: Clock) -> None:
    # Given a chain whose head runs while the task behind it is cancelled
    ids = await store.enqueue(new_chain(2), now=clock())
    await acquire_one(store, clock)
    assert await store.cancel(ids[1], now=clock()) == [ids[1]]
    # When the head completes, Then the cancelled task is not brought back
    assert await complete(store, ids[0], "w1", 1, now=clock())
    assert (await store.get(ids[1])).state is JobState.CANCELLED


async def test_cancel_a_scheduled_task(store: Store, clock: Clock) -> None:
    # Given a task scheduled for later
    job_id = await enqueue_one(store, clock, run_at=clock() + 60)
    # When it is cancelled, Then it never runs
    assert await store.cancel(job_id, now=clock()) == [job_id]
    clock.advance(120)
    assert await store.acquire("w1", now=clock(), lease=LEASE, limit=10) == []


async def test_cancel_refuses_running_finished_and_unknown(store: Store, clock: Clock) -> None:
    # Given a running task and a succeeded one
    running = await acquire_one(store, clock, ids=[await enqueue_one(store, clock)])
    done = await acquire_one(store, clock, ids=[await enqueue_one(store, clock)])
    assert await complete(store, done.id, "w1", 1, now=clock())
    # When they, and an unknown id, are cancelled, Then each is refused
    with pytest.raises(InvalidTransition):
        await store.cancel(running.id, now=clock())
    with pytest.raises(InvalidTransition):
        await store.cancel(done.id, now=clock())
    with pytest.raises(TaskNotFound):
        await store.cancel("no-such-task", now=clock())
    # And nothing changed
    assert (await store.get(running.id)).state is JobState.RUNNING
    assert (await store.get(done.id)).state is JobState.SUCCEEDED


async def test_retry_requeues_a_failed_task_and_its_chain(store: Store, clock: Clock) -> None:
    # Given a chain whose head failed for good after 2 attempts, the rest then cancelled
    ids = await store.enqueue(new_chain(3, max_attempts=2), now=clock())
    for n in (1, 2):
        await acquire_one(store, clock)
        retry_at = None if n == 2 else clock()
        assert await store.fail(ids[0], "w1", n, failure(retry_at=retry_at), now=clock())
    assert await store.cancel(ids[1], now=clock()) == ids[1:]
    # When the head is retried
    clock.advance(60)
    await store.retry(ids[0], now=clock())
    # Then it is queued now with a fresh budget of 2, and its chain waits again
    head = await store.get(ids[0])
    assert (head.state, head.run_at, head.finished_at) == (JobState.QUEUED, clock(), None)
    assert head.attempts == 2 and head.max_attempts - head.attempts == 2
    assert [(await store.get(i)).state for i in ids[1:]] == [JobState.WAITING] * 2
    # And it runs again, as attempt 3, releasing the chain when it succeeds
    again = await acquire_one(store, clock)
    assert (again.id, again.attempts) == (ids[0], 3)
    assert await complete(store, ids[0], "w1", 3, now=clock())
    assert (await store.get(ids[1])).state is JobState.QUEUED


async def test_retry_requeues_a_cancelled_task(store: Store, clock: Clock) -> None:
    # Given a cancelled task
    job_id = await enqueue_one(store, clock)
    await store.cancel(job_id, now=clock())
    # When it is retried, Then it is queued and can run
    await store.retry(job_id, now=clock())
    assert (await store.get(job_id)).state is JobState.QUEUED
    assert (await acquire_one(store, clock)).id == job_id


async def test_retry_refuses_unfinished_and_unknown_tasks(store: Store, clock: Clock) -> None:
    # Given a queued task and a running one
    queued = await enqueue_one(store, clock)
    running = await acquire_one(store, clock, ids=[await enqueue_one(store, clock)])
    # When they, and an unknown id, are retried, Then each is refused
    with pytest.raises(InvalidTransition):
        await store.retry(queued, now=clock())
    with pytest.raises(InvalidTransition):
        await store.retry(running.id, now=clock())
    with pytest.raises(TaskNotFound):
        await store.retry("no-such-task", now=clock())
    # And nothing changed
    assert (await store.get(queued)).state is JobState.QUEUED
    assert (await store.get(running.id)).attempts == 1


async def test_retry_after_the_predecessor_was_purged_queues_the_task(
    store: Store, clock: Clock
) -> None:
    # Given a chain whose first task succeeded and whose second failed for good
    first, second = new_chain(2)
    await store.enqueue([first, second], now=clock())
    job = await acquire_one(store, clock, "w1")
    assert await complete(store, job.id, "w1", 1, now=clock())
    job = await acquire_one(store, clock, "w1")
    assert await store.fail(job.id, "w1", 1, failure(retry_at=None), now=clock())
    # And succeeded tasks were purged since
    clock.advance(10)
    assert await store.purge(states=[JobState.SUCCEEDED], finished_before=clock()) == 1
    # When the failed task is retried, Then it is queued: nothing is left to wait for
    await store.retry(second.id, now=clock())
    assert (await store.get(second.id)).state is JobState.QUEUED
