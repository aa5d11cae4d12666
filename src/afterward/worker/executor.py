"""Calling a task function: `async def` on the event loop, `def` in a thread pool."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import TimeLimitExceeded

__all__ = ["Executor"]


class Executor:
    """Runs task functions with a time limit. One per process, shared by its runners."""

    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="afterward-task")

    async def call(
        self,
        func: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        time_limit: float | None,
    ) -> Any:
        """Call `func`; raise `TimeLimitExceeded` past `time_limit` seconds.

        A plain function that overruns keeps its thread until it returns (Python cannot
        stop a thread), but its attempt is failed at the limit.
        """
        running: asyncio.Future[Any]
        if inspect.iscoroutinefunction(func):
            running = asyncio.ensure_future(func(*args, **kwargs))
        else:
            call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
            running = asyncio.get_running_loop().run_in_executor(self._pool, call)
        try:
            done, _ = await asyncio.wait({running}, timeout=time_limit)
        except asyncio.CancelledError:
            running.cancel()
            raise
        if not done:
            running.cancel()
            raise TimeLimitExceeded(f"the attempt ran longer than its time limit of {time_limit}s")
        return running.result()

    def shutdown(self) -> None:
        """Stop accepting calls; threads still running finish on their own."""
        self._pool.shutdown(wait=False, cancel_futures=True)
