"""Store contract: fencing — only the current holder of a lease may change its task."""

from __future__ import annotations

import pytest

from afterward.jobs import Job, JobState
from afterward.stores import Store

from ._helpers import LEASE, Clock, acquire_one, complete, enqueue_one, failure, new_chain, new_job


async def _running(store: Store, clock: Clock, worker: str = "w1", lease: float = LEASE) -> Job:
    await enqueue_one(store, clock)
    return await acquire_one(store, clock, worker, lease=lease)


async def _assert_untouched(store: Store, job: Job) -> None:
    """`job` (as acquired) is still running under the same lease and attempt."""
    now = await store.get(job.id)
    assert now.state is JobState.RUNNING
    assert (now.lease_owner, now.attempts) == (job.lease_owner, job.attempts)
    assert now.lease_expires_at == job.lease_expires_at
    assert now.finished_at is None and now.last_error == job.last_error
    assert now.history[-1].outcome is None


async def test_another_worker_cannot_complete_or_fail(store: Store, clock: Clock) -> None:
    # Given a task running for w1
    job = await _running(store, clock, "w1")
    # When w2 reports an outcome for it, with the right attempt number
    completed = await complete(store, job.id, "w2", job.attempts, now=clock())
    failed = await store.fail(job.id, "w2", job.attempts, failure(), now=clock())
    # Then both reports are refused and nothing changed
    assert completed is False and failed is False
    await _assert_untouched(store, job)


async def test_a_wrong_attempt_cannot_complete_or_fail(store: Store, clock: Clock) -> None:
    # Given a task running for w1 as attempt 1
    job = await _running(store, clock, "w1")
    # When w1 reports for attempts 0 and 2
    refused = [
        await complete(store, job.id, "w1", 0, now=clock()),
        await complete(store, job.id, "w1", 2, now=clock()),
        await store.fail(job.id, "w1", 2, failure(), now=clock()),
    ]
    # Then every report is refused and nothing changed
    assert refused == [False, False, False]
    await _assert_untouched(store, job)


async def test_an_expired_lease_cannot_complete_or_fail(store: Store, clock: Clock) -> None:
    # Given a task acquired by w1 with a 10 s lease, which then ran 11 s unrenewed
    job = await _running(store, clock, "w1", lease=10)
    clock.advance(11)
    # When w1 reports its outcome
    completed = await complete(store, job.id, "w1", job.attempts, now=clock())
    failed = await store.fail(job.id, "w1", job.attempts, failure(), now=clock())
    # Then both are refused and the task is left for recovery
    assert completed is False and failed is False
    await _assert_untouched(store, job)


async def test_the_holder_can_report_until_its_lease_ends(store: Store, clock: Clock) -> None:
    # Given a task acquired by w1 with a 10 s lease, 10 s ago
    job = await _running(store, clock, "w1", lease=10)
    clock.advance(10)
    # When w1 completes it right at the end of the lease
    accepted = await complete(store, job.id, "w1", job.attempts, now=clock())
    # Then the report is accepted
    assert accepted is True
    assert (await store.get(job.id)).state is JobState.SUCCEEDED


async def test_a_worker_whose_task_was_recovered_is_fenced_off(store: Store, clock: Clock) -> None:
    # Given a task w1 lost: its lease expired, it was recovered and w2 acquired it
    job = await _running(store, clock, "w1", lease=10)
    clock.advance(11)
    assert await store.recover(now=clock()) == 1
    taken = await acquire_one(store, clock, "w2")
    assert taken.attempts == 2
    # When w1 finally reports, with its attempt and with w2's
    late = [
        await complete(store, job.id, "w1", 1, now=clock()),
        await store.fail(job.id, "w1", 1, failure(), now=clock()),
        await complete(store, job.id, "w1", 2, now=clock()),
    ]
    # Then it is refused and w2 still runs the task
    assert late == [False, False, False]
    await _assert_untouched(store, taken)
    # And w2's own report is accepted
    assert await complete(store, job.id, "w2", 2, now=clock())


async def test_the_same_worker_cannot_report_an_older_attempt(store: Store, clock: Clock) -> None:
    # Given a task w1 lost and then acquired again, as attempt 2
    job = await _running(store, clock, "w1", lease=10)
    clock.advance(11)
    assert await store.recover(now=clock()) == 1
    again = await acquire_one(store, clock, "w1")
    assert again.attempts == 2
    # When the first run (attempt 1) reports late
    stale = await complete(store, job.id, "w1", 1, now=clock())
    # Then it is refused: only attempt 2 may report
    assert stale is False
    await _assert_untouched(store, again)


async def test_extend_leases_returns_only_the_ids_still_held(store: Store, clock: Clock) -> None:
    # Given w1 holding a short lease, a long lease and a reservation; w2 holding one task
    await store.enqueue([new_job(), new_job()], now=clock())
    short = await acquire_one(store, clock, "w1", lease=10)
    long = await acquire_one(store, clock, "w1", lease=100)
    (reserved,) = await store.enqueue([new_job()], now=clock(), reserve_for="w1", lease=100)
    theirs = await _running(store, clock, "w2", lease=100)
    # When, after the short lease ran out, w1 renews them all plus an unknown id
    clock.advance(20)
    kept = await store.extend_leases(
        "w1", [short.id, long.id, reserved, theirs.id, "no-such-task"], now=clock(), lease=60
    )
    # Then only what w1 still holds comes back, and its leases were pushed
    assert kept == {long.id, reserved}
    assert (await store.get(long.id)).lease_expires_at == clock() + 60
    assert (await store.get(reserved)).lease_expires_at == clock() + 60
    # And the other leases are unchanged
    assert (await store.get(short.id)).lease_expires_at == short.lease_expires_at
    assert (await store.get(theirs.id)).lease_expires_at == theirs.lease_expires_at


async def test_a_renewed_lease_keeps_reports_valid(store: Store, clock: Clock) -> None:
    # Given a task acquired with a 10 s lease and renewed after 8 s for another 10 s
    job = await _running(store, clock, "w1", lease=10)
    clock.advance(8)
    assert await store.extend_leases("w1", [job.id], now=clock(), lease=10) == {job.id}
    # When the worker completes it 15 s after acquiring (past the original lease)
    clock.advance(7)
    accepted = await complete(store, job.id, "w1", job.attempts, now=clock())
    # Then the report is accepted
    assert accepted is True


async def test_a_finished_task_is_no_longer_held(store: Store, clock: Clock) -> None:
    # Given a task w1 completed
    job = await _running(store, clock, "w1")
    assert await complete(store, job.id, "w1", job.attempts, now=clock())
    # When w1 renews its lease or reports it again
    kept = await store.extend_leases("w1", [job.id], now=clock(), lease=LEASE)
    twice = await complete(store, job.id, "w1", job.attempts, now=clock())
    failed = await store.fail(job.id, "w1", job.attempts, failure(), now=clock())
    # Then nothing is held and nothing changes
    assert kept == set() and twice is False and failed is False
    stored = await store.get(job.id)
    assert stored.state is JobState.SUCCEEDED
    assert [a.outcome for a in stored.history] == ["succeeded"]


async def test_a_refused_complete_does_not_release_the_chain(store: Store, clock: Clock) -> None:
    # Given a chain whose head w1 runs with a 10 s lease
    ids = await store.enqueue(new_chain(2), now=clock())
    head = await acquire_one(store, clock, "w1", lease=10)
    # When a stranger completes the head, and w1 completes it after its lease
    assert await complete(store, head.id, "w2", head.attempts, now=clock()) is False
    clock.advance(11)
    assert await complete(store, head.id, "w1", head.attempts, now=clock()) is False
    # Then the next task still waits and nothing can be acquired
    assert (await store.get(ids[1])).state is JobState.WAITING
    assert await store.acquire("w3", now=clock(), lease=LEASE, limit=10) == []
    # When the head is recovered, rerun and completed by its new holder
    assert await store.recover(now=clock()) == 1
    rerun = await acquire_one(store, clock, "w3")
    assert await complete(store, head.id, "w3", rerun.attempts, now=clock())
    # Then, and only then, the next task is released
    assert (await store.get(ids[1])).state is JobState.QUEUED


async def test_release_after_the_lease_expired_is_refused(store: Store, clock: Clock) -> None:
    # Given a task whose holder let its lease expire (not yet recovered)
    (job_id,) = await store.enqueue([new_job()], now=clock())
    await store.acquire("w1", now=clock(), lease=LEASE, limit=1)
    clock.advance(LEASE + 1)
    # When the stale holder tries to hand it back
    handed = await store.release("w1", [job_id], now=clock())
    # Then nothing changes: no extra attempt is granted to a stale holder
    job = await store.get(job_id)
    assert handed == 0
    assert (job.state, job.max_attempts) == (JobState.RUNNING, new_job().max_attempts)


async def test_unique_key_on_a_chain_member_is_refused(store: Store, clock: Clock) -> None:
    # Given a chain of two whose second task carries a unique key
    first = new_job()
    second = new_job(prev_id=first.id, unique_key="k")
    # When it is enqueued, Then it is refused before anything is stored
    with pytest.raises(ValueError, match="unique_key"):
        await store.enqueue([first, second], now=clock())
    assert await store.counts() == {}
