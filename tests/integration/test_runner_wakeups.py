"""A waiting worker wakes when its own upkeep puts work back, not only on the store's signal.

On Redis a wake-up token reaches one waiting connection: the one that waited longest,
which may belong to a frozen (SIGSTOPped) worker whose wait is still open on the server.
The live worker that took the task back must not then sleep until its safety poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from servers import drop_store_data, redis_url

from afterward import Afterward, JobState
from afterward.stores.redis.target import parse_redis_url
from afterward.worker import loop
from afterward.worker.executor import Executor
from afterward.worker.identity import new_worker_id
from afterward.worker.runner import Runner

from . import apps

pytestmark = pytest.mark.redis

BOUND = 20.0
"""Far below the safety poll set here, far above a take-back: only a missed wake fails."""


@pytest.fixture
async def afterward(tmp_path: Path) -> AsyncIterator[Afterward]:
    url = redis_url(tmp_path)
    instance = Afterward(url=url, execution="workers", tasks=[apps.record])
    await instance.open()
    try:
        yield instance
    finally:
        await instance.aclose()
        drop_store_data(url)


async def test_a_task_taken_back_runs_though_a_frozen_worker_took_the_wake_up(
    afterward: Afterward, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop, "_SAFETY_POLL", 600.0)  # only a wake-up can start it in time
    apps.EVENTS.clear()
    # Given a task held by a worker that froze: its lease runs out soon
    task_id = await afterward.enqueue(apps.record, "taken back")
    (held,) = await afterward.store.acquire(
        "frozen-host/1/x", now=afterward.runner.clock(), lease=1.0, limit=1
    )
    assert held.id == task_id
    # And that worker's wait for wake-ups, open on the server before the live worker's
    prefix = parse_redis_url(afterward.store.url).prefix
    frozen = Redis.from_url(afterward.store.url.partition("?")[0])
    await frozen.delete(f"{prefix}:wake")  # the enqueue's own wake-up, which nobody took

    async def wait_for_wake_up() -> object:
        return await frozen.blpop([f"{prefix}:wake"], timeout=0)

    stolen = asyncio.create_task(wait_for_wake_up())
    await asyncio.sleep(0.2)
    worker = Runner(  # as a worker process has it: waiting on the store's wake-ups
        store=afterward.store,
        registry=afterward.registry,
        settings=afterward.settings,
        worker_id=new_worker_id(),
        executor=Executor(2),
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        # When the lease runs out and the live worker's upkeep takes the task back
        async with asyncio.timeout(BOUND):
            while apps.EVENTS != [("taken back",)]:
                await asyncio.sleep(0.05)
        # Then the live worker ran it, though the frozen wait got the store's wake-up
        assert stolen.done()
    finally:
        stop.set()
        await running
        worker.executor.shutdown()
        stolen.cancel()
        await frozen.aclose()
    job = await afterward.get(task_id)
    assert job.state is JobState.SUCCEEDED
