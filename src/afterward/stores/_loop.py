"""A private event loop on its own thread, for stores whose drivers bind to one loop.

A store is shared by every coroutine of a process, and in a web process those run on more
than one event loop (the server's, the embedded worker's; `TestClient` even makes one per
request). psycopg and redis-py connection pools belong to the loop that created them, so
the PostgreSQL and Redis stores keep theirs on a `LoopThread` and send each operation
there: callers on any loop just ``await thread.run(coro)``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """One daemon thread running one event loop until `stop()`."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the thread (idempotent)."""
        with self._lock:
            if self._loop is not None:
                return
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on this thread's loop and await its result from the caller's loop.

        Cancelling the caller cancels the coroutine.
        """
        if self._loop is None:
            coro.close()
            raise RuntimeError(f"{self._name} is not running")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return await asyncio.wrap_future(future)

    def run_blocking(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on this thread's loop from code that has no loop running."""
        if self._loop is None:
            coro.close()
            raise RuntimeError(f"{self._name} is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def stop(self) -> None:
        """Stop the loop and join the thread; pending work should be finished first."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
