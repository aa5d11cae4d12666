"""Store contract: looking at tasks — get, list, counts, purge — and waiting for work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from afterward.errors import StoreError, TaskNotFound
from afterward.jobs import JobState
from afterward.stores import JobFilter, Store, store_from_url

from ._helpers import Clock, acquire_one, complete, enqueue_one, failure, new_chain, new_job

WAIT_BOUND = 10.0
"""A generous bound for "returned": only a hang fails, never a slow machine."""


async def test_get_an_unknown_task_raises(store: Store) -> None:
    # Given an empty store, When an unknown id is looked up, Then TaskNotFound is raised
    with pytest.raises(TaskNotFound) as raised:
        await store.get("no-such-task")
    assert raised.value.task_id == "no-such-task"


async def _varied(store: Store, clock: Clock) -> dict[str, str]:
    """Tasks one second apart: two in "mail", a chain of two in "media", one failed."""
    made = {}
    for name, job in [
        ("mail1", new_job(queue="mail", function="app.tasks.send_email")),
        ("mail2", new_job(queue="mail", function="app.tasks.send_email_digest")),
        ("failing", new_job(queue="mail", function="app.tasks.bounce", max_attempts=1)),
    ]:
        clock.advance(1)
        (made[name],) = await store.enqueue([job], now=clock())
    clock.advance(1)
    made["head"], made["tail"] = await store.enqueue(
        new_chain(2, queue="media", function="app.tasks.resize"), now=clock()
    )
    await acquire_one(store, clock, ids=[made["failing"]])
    assert await store.fail(made["failing"], "w1", 1, failure(), now=clock())
    return made


async def test_list_filters_by_state_queue_function_and_chain(store: Store, clock: Clock) -> None:
    # Given varied tasks
    made = await _varied(store, clock)

    async def ids(where: JobFilter) -> set[str]:
        return {j.id for j in await store.list(where)}

    # When they are listed with each filter, Then only the matching tasks come back
    assert await ids(JobFilter()) == set(made.values())
    assert await ids(JobFilter(states=[JobState.FAILED])) == {made["failing"]}
    assert await ids(JobFilter(states=[JobState.WAITING, JobState.FAILED])) == {
        made["tail"],
        made["failing"],
    }
    assert await ids(JobFilter(queue="media")) == {made["head"], made["tail"]}
    assert await ids(JobFilter(function="send_email")) == {made["mail1"], made["mail2"]}
    assert await ids(JobFilter(chain_id=made["head"])) == {made["head"], made["tail"]}
    assert await ids(JobFilter(queue="mail", states=[JobState.QUEUED])) == {
        made["mail1"],
        made["mail2"],
    }
    assert await ids(JobFilter(queue="nowhere")) == set()


async def test_list_by_id_prefix_takes_the_prefix_literally(store: Store, clock: Clock) -> None:
    # Given tasks whose ids share starts, one holding LIKE's wildcards
    ids = ["ab%_1", "abc-1", "abc-2", "abd", "xabc"]
    for job_id in ids:
        clock.advance(1)
        await store.enqueue([new_job(id=job_id)], now=clock())

    async def starting(prefix: str, **kw: Any) -> list[str]:
        return [j.id for j in await store.list(JobFilter(id_prefix=prefix, **kw))]

    # When tasks are listed by the start of their id
    # Then exactly those whose id starts with it come back, newest first
    assert await starting("abc") == ["abc-2", "abc-1"]
    assert await starting("abc-1") == ["abc-1"]
    assert await starting("a") == ["abd", "abc-2", "abc-1", "ab%_1"]
    # and % and _ are characters, not wildcards
    assert await starting("ab%") == ["ab%_1"]
    assert await starting("ab_") == []
    assert await starting("b") == [] and await starting("abc-10") == []
    # And the prefix combines with the other filters and with limit
    assert await starting("abc", states=[JobState.FAILED]) == []
    assert [j.id for j in await store.list(JobFilter(id_prefix="abc"), limit=1)] == ["abc-2"]


async def test_open_without_create_refuses_a_store_that_does_not_exist(store_url: str) -> None:
    # Given a URL where no store was ever opened
    reader = store_from_url(store_url)
    # When it is opened without creating, Then it refuses, naming what it tried
    for _ in range(2):  # and the first refusal left nothing behind for the second to find
        with pytest.raises(StoreError, match=r"^no afterward store at"):
            await reader.open(create=False)
    # Given the store created by an ordinary open, with a task in it
    writer = store_from_url(store_url)
    await writer.open()
    try:
        await writer.enqueue([new_job(id="only")], now=1_800_000_000.0)
    finally:
        await writer.close()
    # When it is opened without creating, Then it reads as usual
    await reader.open(create=False)
    try:
        assert [j.id for j in await reader.list(JobFilter())] == ["only"]
    finally:
        await reader.close()


async def test_list_is_newest_first_and_pages(store: Store, clock: Clock) -> None:
    # Given five tasks enqueued a second apart
    made = []
    for _ in range(5):
        clock.advance(1)
        made.append(await enqueue_one(store, clock))
    newest_first = made[::-1]
    # When they are listed whole and by pages of two
    whole = await store.list(JobFilter())
    pages = [await store.list(JobFilter(), limit=2, offset=o) for o in (0, 2, 4, 6)]
    # Then the newest comes first and pages follow on without gaps or repeats
    assert [j.id for j in whole] == newest_first
    assert [[j.id for j in p] for p in pages] == [
        newest_first[0:2],
        newest_first[2:4],
        newest_first[4:],
        [],
    ]
    # And listed tasks carry no attempt history
    assert all(j.history == () for j in whole)


async def test_counts_by_queue_and_state(store: Store, clock: Clock) -> None:
    # Given varied tasks
    await _varied(store, clock)
    # When they are counted
    counts = await store.counts()
    # Then each (queue, state) has its number and absent pairs are zero
    assert {k: n for k, n in counts.items() if n} == {
        ("mail", JobState.QUEUED): 2,
        ("mail", JobState.FAILED): 1,
        ("media", JobState.QUEUED): 1,
        ("media", JobState.WAITING): 1,
    }
    assert counts.get(("mail", JobState.RUNNING), 0) == 0


async def test_purge_deletes_only_old_finished_tasks(store: Store, clock: Clock) -> None:
    # Given tasks that succeeded, failed and were cancelled at t0, and more at t0 + 100
    async def finish(outcome: str) -> str:
        job_id = await enqueue_one(store, clock, max_attempts=1)
        if outcome == "cancelled":
            await store.cancel(job_id, now=clock())
            return job_id
        await acquire_one(store, clock, ids=[job_id])
        if outcome == "succeeded":
            assert await complete(store, job_id, "w1", 1, now=clock())
        else:
            assert await store.fail(job_id, "w1", 1, failure(), now=clock())
        return job_id

    old = {o: await finish(o) for o in ("succeeded", "failed", "cancelled")}
    cutoff = clock.advance(100)
    at_cutoff = await finish("succeeded")
    clock.advance(1)
    recent = await finish("failed")
    unfinished = await enqueue_one(store, clock)
    # When succeeded, failed (and queued) tasks finished before the cutoff are purged
    purged = await store.purge(
        states=[JobState.SUCCEEDED, JobState.FAILED, JobState.QUEUED], finished_before=cutoff
    )
    # Then exactly the two old ones are gone
    assert purged == 2
    for job_id in (old["succeeded"], old["failed"]):
        with pytest.raises(TaskNotFound):
            await store.get(job_id)
    for job_id in (old["cancelled"], at_cutoff, recent, unfinished):
        await store.get(job_id)
    # And their attempts went with them: the same id starts over with a clean history
    reborn = new_job(id=old["succeeded"])
    await store.enqueue([reborn], now=clock())
    assert (await store.get(reborn.id)).history == ()
    assert (await acquire_one(store, clock, ids=[reborn.id])).attempts == 1
    assert [a.number for a in (await store.get(reborn.id)).history] == [1]


async def test_wait_for_work_wakes_on_another_instances_enqueue(
    store: Store, store_url: str, clock: Clock
) -> None:
    # Given a second store instance on the same URL, and a worker waiting on the first
    producer = store_from_url(store_url)
    await producer.open()
    try:
        await store.acquire("w1", now=clock(), lease=30, limit=1)  # settle, as a worker does
        waiting = asyncio.create_task(store.wait_for_work(timeout=60))
        await asyncio.sleep(0.05)
        # When the other instance enqueues a task
        await producer.enqueue([new_job()], now=clock())
        # Then the wait returns well before its timeout, and the task can be taken
        await asyncio.wait_for(waiting, WAIT_BOUND)
        assert len(await store.acquire("w1", now=clock(), lease=30, limit=1)) == 1
    finally:
        await producer.close()


async def test_wait_for_work_returns_after_its_timeout(store: Store, clock: Clock) -> None:
    # Given a worker that just found nothing to do
    assert await store.acquire("w1", now=clock(), lease=30, limit=1) == []
    # When it waits a short while and nothing happens
    waited: Awaitable[object] = store.wait_for_work(timeout=0.2)
    # Then the wait returns
    assert await asyncio.wait_for(waited, WAIT_BOUND) is None
