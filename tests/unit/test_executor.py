"""Executor: how a task function is called, and how its time limit is kept."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

from afterward.errors import TimeLimitExceeded
from afterward.worker.executor import Executor


async def stubborn() -> str:
    """Ignores being cancelled, and returns."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(5)
    return "done anyway"


@pytest.fixture
def executor() -> Executor:
    return Executor(2)


async def test_an_async_function_runs_in_the_callers_task(executor: Executor) -> None:
    # Given an async function that reports the task it runs in
    async def where() -> asyncio.Task[object] | None:
        return asyncio.current_task()

    # When it is called
    # Then it ran in the caller's task, started at once rather than a loop turn later
    assert await executor.call(where, [], {}, None) is asyncio.current_task()


async def _gives_up() -> None:
    raise TimeoutError("the remote side did not answer")


def _gives_up_in_a_thread() -> None:
    raise TimeoutError("the remote side did not answer")


@pytest.mark.parametrize("func", [_gives_up, _gives_up_in_a_thread])
async def test_a_functions_own_timeout_error_is_not_the_time_limit(
    executor: Executor, func: Any
) -> None:
    # Given a function (async, or plain in a thread) that raises TimeoutError well
    # within its limit
    # When it is called, then its own error comes out, not TimeLimitExceeded
    with pytest.raises(TimeoutError, match="remote side") as caught:
        await executor.call(func, [], {}, 30.0)
    assert not isinstance(caught.value, TimeLimitExceeded)


async def test_an_async_function_past_its_limit_fails_even_if_it_swallows_the_cancel(
    executor: Executor,
) -> None:
    # Given an async function that ignores being cancelled and returns
    # When it is called with a 0.05 s limit, then the attempt still overran
    with pytest.raises(TimeLimitExceeded):
        await executor.call(stubborn, [], {}, 0.05)


async def test_cancelling_the_caller_is_not_lost_when_the_function_swallows_it(
    executor: Executor,
) -> None:
    # Given a caller awaiting an async function that ignores being cancelled
    caller = asyncio.create_task(executor.call(stubborn, [], {}, None))
    await asyncio.sleep(0.01)
    # When the caller is cancelled (a worker's wind-down past its grace period)
    caller.cancel()
    # Then the caller ends cancelled, and no success is reported
    with pytest.raises(asyncio.CancelledError):
        await caller


async def test_a_plain_function_past_its_limit_fails_and_is_counted_stuck(
    executor: Executor,
) -> None:
    # Given a plain function that sleeps past its limit
    # When it is called with a 0.05 s limit
    with pytest.raises(TimeLimitExceeded):
        await executor.call(time.sleep, [0.3], {}, 0.05)
    # Then its thread is counted stuck until the function returns
    assert executor.stuck == 1
    await asyncio.sleep(0.5)
    assert executor.stuck == 0
