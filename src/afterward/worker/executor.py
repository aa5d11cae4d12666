"""Calling a task function: `async def` on the event loop, `def` in a thread pool."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import traceback
from collections.abc import Awaitable, Callable
from types import FunctionType
from typing import Any

from ..errors import TimeLimitExceeded
from .threads import Call, TaskThreads

__all__ = ["Executor", "is_async_callable"]


class Executor:
    """Runs task functions with a time limit. One per process, shared by its runners."""

    def __init__(self, threads: int) -> None:
        self._threads = TaskThreads(threads, "afterward-task")

    @property
    def stuck(self) -> int:
        """Threads held by plain functions that overran their time limit and still run.

        Python cannot stop a thread: each is lost to the pool until its function returns.
        """
        return self._threads.overrunning

    async def call(
        self,
        func: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        time_limit: float | None,
    ) -> Any:
        """Call `func`; raise `TimeLimitExceeded` past `time_limit` seconds.

        An `async def` function is cancelled at the limit. A plain function that overruns
        keeps its thread until it returns (Python cannot stop a thread), but its attempt is
        failed at the limit; until it returns it is counted in `stuck`.
        """
        in_thread: Call | None = None
        running: Awaitable[Any]
        if is_async_callable(func):
            # Awaited in the caller's task, not a task of its own: it starts at once, not a
            # loop turn later, and a no-op task costs one task and one wait fewer.
            running = func(*args, **kwargs)
        else:
            context = contextvars.copy_context()
            call = functools.partial(context.run, _freeing_on_error, func, *args, **kwargs)
            in_thread = self._threads.submit(call)
            running = in_thread.future
        limit = asyncio.timeout(time_limit)
        try:
            async with limit:
                result = await running
        except TimeoutError:
            if not limit.expired():
                raise  # the function's own TimeoutError
            if in_thread is not None:
                self._threads.give_up(in_thread)
            raise _over(time_limit) from None
        except MemoryError as exc:
            traceback.clear_frames(exc.__traceback__)  # see `_freeing_on_error`
            raise
        except asyncio.CancelledError:
            if in_thread is not None:
                self._threads.cancel(in_thread)  # not started: it never will be
            raise
        if limit.expired():  # it swallowed the cancellation: the attempt still overran
            raise _over(time_limit)
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # it swallowed a cancellation of the caller
            raise asyncio.CancelledError
        return result

    def shutdown(self) -> None:
        """Stop accepting calls; threads still running finish on their own."""
        self._threads.shutdown()


def is_async_callable(func: Any) -> bool:
    """Whether calling `func` gives a coroutine: an `async def` function, method or
    partial of one, or an object whose `__call__` is one (an `AsyncMock`, for one)."""
    if type(func) is FunctionType:  # the common case, decided at once
        return inspect.iscoroutinefunction(func)
    while isinstance(func, functools.partial):
        func = func.func
    call = type(func).__call__ if not inspect.isroutine(func) else None
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(call)


def _over(time_limit: float | None) -> TimeLimitExceeded:
    return TimeLimitExceeded(f"the attempt ran longer than its time limit of {time_limit}s")


def _freeing_on_error(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Call `func`; if it runs out of memory, free its locals at once, in its own thread.

    The exception's traceback keeps the failed call's frames, and with them its locals,
    until the error is recorded; a task that ran out of memory (under ``--max-memory``)
    must give its memory back before the rest of the process (other tasks, the store
    client) needs to allocate. Other errors keep their locals, for error trackers.
    """
    try:
        return func(*args, **kwargs)
    except MemoryError as exc:
        traceback.clear_frames(exc.__traceback__)
        raise
