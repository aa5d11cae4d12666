"""The task threads: calls handed to threads and their outcomes back to the caller's loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from afterward.worker.threads import TaskThreads


@pytest.fixture
def threads() -> Iterator[TaskThreads]:
    pool = TaskThreads(2, "test-task")
    yield pool
    pool.shutdown()


def _named(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


async def test_a_call_returns_its_result_or_raises_its_error(threads: TaskThreads) -> None:
    assert await threads.submit(lambda: 41 + 1).future == 42

    def fail() -> None:
        raise LookupError("nope")

    with pytest.raises(LookupError, match="nope"):
        await threads.submit(fail).future


async def test_threads_start_as_calls_need_them_up_to_the_limit() -> None:
    pool = TaskThreads(2, "test-lazy")
    release = threading.Event()
    try:
        # Given no call yet, no thread runs
        assert _named("test-lazy") == []
        # When three calls wait at once on a pool of two
        calls = [pool.submit(release.wait) for _ in range(3)]
        await asyncio.sleep(0.05)
        # Then two threads run them; the third call waits its turn, then runs
        assert len(_named("test-lazy")) == 2
        release.set()
        assert await asyncio.gather(*(c.future for c in calls)) == [True, True, True]
        # And a later call reuses a thread that is free
        assert await pool.submit(lambda: "again").future == "again"
        assert len(_named("test-lazy")) == 2
    finally:
        release.set()
        pool.shutdown()


async def test_a_cancelled_call_that_no_thread_took_never_runs() -> None:
    pool = TaskThreads(1, "test-cancel")
    release, ran = threading.Event(), threading.Event()
    try:
        busy = pool.submit(release.wait)
        waiting = pool.submit(ran.set)
        pool.cancel(waiting)
        release.set()
        await busy.future
        await asyncio.sleep(0.05)
        assert not ran.is_set()
    finally:
        release.set()
        pool.shutdown()


async def test_a_call_given_up_while_running_counts_until_it_returns(
    threads: TaskThreads,
) -> None:
    release = threading.Event()
    call = threads.submit(release.wait)
    await asyncio.sleep(0.05)
    threads.give_up(call)
    assert threads.overrunning == 1
    release.set()
    await call.future
    assert threads.overrunning == 0


async def test_shutdown_cancels_waiting_calls_and_threads_end() -> None:
    pool = TaskThreads(1, "test-shutdown")
    release = threading.Event()
    running = pool.submit(release.wait)
    waiting = pool.submit(lambda: "never")
    await asyncio.sleep(0.05)
    pool.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(lambda: None)
    release.set()
    assert await running.future is True
    with pytest.raises(asyncio.CancelledError):
        await waiting.future
    for thread in _named("test-shutdown"):
        thread.join(timeout=5)
    assert _named("test-shutdown") == []
