"""Store contract: one open store serves coroutines on any number of event loops.

A web process calls its store from the server's loop and the embedded worker's; a test
client makes a loop per portal. Calls run on their caller's loop, and a loop that shuts
down takes its connections with it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from afterward.jobs import JobState
from afterward.stores import Store

from ._helpers import LEASE, Clock, new_job

T = TypeVar("T")

BOUND = 10.0
"""A generous bound for "promptly": only a hang fails, never a slow machine."""


def _on_another_loop(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `make()` on a new event loop in a new thread; return its result or raise."""
    result: list[T] = []
    errors: list[BaseException] = []

    def main() -> None:
        try:
            result.append(asyncio.run(make()))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=main)
    thread.start()
    thread.join(BOUND * 3)
    assert not thread.is_alive(), "the other loop's call hung"
    if errors:
        raise errors[0]
    return result[0]


async def test_calls_from_loops_that_come_and_go_all_work(store: Store, clock: Clock) -> None:
    # Given a store opened on this loop
    # When twenty short-lived loops, one after another, each enqueue a task
    for _ in range(20):
        await asyncio.to_thread(_on_another_loop, lambda: store.enqueue([new_job()], now=clock()))
    # Then every task is there, as seen from this loop, and the store still works here
    assert await store.counts() == {("default", JobState.QUEUED): 20}
    taken = await store.acquire("w1", now=clock(), lease=LEASE, limit=50)
    assert len(taken) == 20


async def test_two_loops_working_at_once_see_each_others_writes(store: Store, clock: Clock) -> None:
    # Given a long-lived second loop, in its own thread, taking tasks as they come
    done = threading.Event()

    async def consume() -> list[str]:
        taken: list[str] = []
        while len(taken) < 50 and not done.is_set():
            jobs = await store.acquire("w2", now=clock(), lease=LEASE, limit=10)
            for job in jobs:
                assert await store.complete(job.id, "w2", 1, now=clock())
            taken += [job.id for job in jobs]
            if not jobs:
                await store.wait_for_work(0.05)
        return taken

    consumer = asyncio.create_task(asyncio.to_thread(_on_another_loop, consume))
    # When this loop enqueues fifty tasks while it runs
    ids = []
    for _ in range(50):
        ids += await store.enqueue([new_job()], now=clock())
    # Then the other loop ran every one of them, once
    try:
        taken = await asyncio.wait_for(consumer, BOUND * 3)
    finally:
        done.set()
    assert sorted(taken) == sorted(ids)
    assert await store.counts() == {("default", JobState.SUCCEEDED): 50}


async def test_close_on_one_loop_ends_a_wait_on_another(store: Store, clock: Clock) -> None:
    # Given another loop waiting for work with a long timeout
    started = threading.Event()

    async def wait() -> float:
        await store.acquire("w2", now=clock(), lease=LEASE, limit=1)
        started.set()
        began = time.monotonic()
        await store.wait_for_work(60)
        return time.monotonic() - began

    waiting = asyncio.create_task(asyncio.to_thread(_on_another_loop, wait))
    assert await asyncio.to_thread(started.wait, BOUND)
    await asyncio.sleep(0.2)
    # When this loop closes the store, Then the other loop's wait ends well before its timeout
    await store.close()
    waited = await asyncio.wait_for(waiting, BOUND * 3)
    assert waited < 30
