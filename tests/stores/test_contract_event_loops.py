"""Store contract: a store's connections live on one event loop at a time.

The loop of its first call keeps them until it shuts down or the store closes; a later
loop reconnects once that one has stopped (one `asyncio.run` after another). A bare store
called from a second loop while the first still runs says so (an `Afterward` sends its
own calls to its home loop, see tests/integration/test_home_loop.py).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from afterward.errors import StoreError
from afterward.jobs import JobState
from afterward.stores import Store, store_from_url

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


def test_loops_one_after_another_all_work(store_url: str, clock: Clock) -> None:
    # Given a store opened in one `asyncio.run`
    store = store_from_url(store_url)
    asyncio.run(store.open())
    try:
        # When twenty more, one after another, each enqueue a task
        for _ in range(20):
            asyncio.run(store.enqueue([new_job()], now=clock()))
        # Then every task is there, and yet another loop can take them
        assert asyncio.run(store.counts()) == {("default", JobState.QUEUED): 20}
        taken = asyncio.run(store.acquire("w1", now=clock(), lease=LEASE, limit=50))
        assert len(taken) == 20
    finally:
        asyncio.run(store.close())


async def test_a_second_running_loop_is_told_where_the_store_lives(
    store: Store, store_url: str, clock: Clock
) -> None:
    if store_url.startswith("sqlite"):
        pytest.skip("SQLite's connection runs in threads: any loop may call it")
    # Given a store in use on this loop
    await store.enqueue([new_job()], now=clock())
    # When another loop calls it while this one runs
    with pytest.raises(StoreError, match="in use on another event loop"):
        await asyncio.to_thread(_on_another_loop, store.counts)
    # Then it still serves this loop
    assert await store.counts() == {("default", JobState.QUEUED): 1}


async def test_close_from_another_loop_ends_a_wait_on_this_one(store: Store, clock: Clock) -> None:
    # Given this loop waiting for work with a long timeout
    await store.acquire("w2", now=clock(), lease=LEASE, limit=1)
    began = time.monotonic()
    waiting = asyncio.create_task(store.wait_for_work(60))
    await asyncio.sleep(0.2)
    # When another loop closes the store
    await asyncio.to_thread(_on_another_loop, store.close)
    # Then the wait ends well before its timeout
    await asyncio.wait_for(waiting, BOUND * 3)
    assert time.monotonic() - began < 30
