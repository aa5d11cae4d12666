"""The event loop an app's tasks live on: its store's connections and its runner.

An `Afterward` is used from the web server's loop (requests, their tasks, the in-app
runner) and sometimes from others: a test's `asyncio.run`, each `TestClient` portal. The
first loop that uses it becomes its home: the store opens there, and the in-app runner
runs there as a task. A call from another loop while home still runs goes there whole
(`Home.run`). When the home loop shuts down, the runner winds down and the store's
connections close (`afterward.loops.at_shutdown`); the next loop to call becomes home.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from .errors import StoreError
from .loops import absorbing_cancel, at_shutdown

__all__ = ["Home"]

T = TypeVar("T")


class Home:
    """Where `arrive` (open the store) ran last, until `leave` (stop the runner) runs."""

    def __init__(
        self,
        arrive: Callable[[], Coroutine[Any, Any, None]],
        leave: Callable[[], Awaitable[None]],
    ) -> None:
        self._arrive = arrive
        self._leave = leave
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._arrival: asyncio.Task[None] | None = None
        self._take_back: Callable[[], None] = lambda: None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The home loop, if there is one."""
        return self._loop

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        """Await `call()` at home: here, or on the home loop if it runs elsewhere. This
        loop becomes home if there is none (or the old one no longer runs)."""
        here = asyncio.get_running_loop()
        loop = self._loop
        if loop is not here:  # the common case (a request on the server's loop) takes no lock
            with self._lock:
                loop = self._loop
                if loop is not here and (loop is None or not loop.is_running()):
                    loop = self._settle(here)
        if loop is here:
            return await self._at_home(call)
        done = asyncio.run_coroutine_threadsafe(self._at_home(call), loop)
        try:
            return await asyncio.wrap_future(done)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # Not this caller's cancel: the home loop shut down under the call, which may
            # or may not have taken effect (an enqueue may have committed).
            raise StoreError(
                "the app's event loop shut down during this call, which may or may not "
                "have taken effect; check before trying again"
            ) from None

    async def _at_home(self, call: Callable[[], Awaitable[T]]) -> T:
        arrival = self._arrival
        if arrival is not None:
            try:
                await asyncio.shield(arrival)
            except Exception:
                with self._lock:
                    if self._arrival is arrival:  # the next call tries again
                        self._forget()
                raise
            if self._arrival is arrival:
                self._arrival = None  # arrived: later calls go straight on
        return await call()

    def _settle(self, loop: asyncio.AbstractEventLoop) -> asyncio.AbstractEventLoop:
        self._forget()  # an old home that stopped without shutting down: left as it is
        self._loop = loop
        self._arrival = loop.create_task(self._arrive(), name="afterward-open")
        self._take_back = at_shutdown(self._depart)
        return loop

    def _forget(self) -> None:
        self._take_back()
        self._take_back = lambda: None
        self._loop = self._arrival = None

    async def _depart(self) -> None:
        with self._lock:
            self._forget()
        await self._leave()

    async def close(self) -> None:
        """Run `leave` at home, if there is a home (idempotent)."""
        here = asyncio.get_running_loop()
        with self._lock:
            loop = self._loop
            if loop is None:
                return
            if loop is not here and not loop.is_running():
                self._forget()
                return
        if loop is here:
            if await absorbing_cancel(self._depart()):
                raise asyncio.CancelledError
        else:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._depart(), loop))
