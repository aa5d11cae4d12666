"""A store's connections, on the one event loop that uses them.

psycopg's and redis-py's asyncio connections belong to the loop that opened them. A store
connects on the loop of its first call and keeps its connections there until that loop
shuts down (`afterward.loops.at_shutdown`) or the store closes. A later loop reconnects
once the first one has stopped (one `asyncio.run` after another); while it still runs,
another loop's call is refused: an app sends its calls to its own loop
(`afterward.home`), so only code holding a bare store can meet this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

from ..loops import absorbing_cancel, at_shutdown

__all__ = ["LoopBound", "NotOpen"]

R = TypeVar("R")
T = TypeVar("T")

log = logging.getLogger("afterward.store")


class NotOpen(Exception):
    """The store is not open here: closed, never opened, or in use on another loop."""


class LoopBound(Generic[R]):
    """Connections (`R`) made by `connect` on the loop that first needs them, interrupted
    (`interrupt`: waits for work end) and then closed by `disconnect`."""

    def __init__(
        self,
        name: str,
        connect: Callable[[], Coroutine[Any, Any, R]],
        disconnect: Callable[[R], Awaitable[None]],
        *,
        interrupt: Callable[[R], Awaitable[None]],
        grace: float,
    ) -> None:
        self._name = name
        self._connect = connect
        self._disconnect = disconnect
        self._interrupt = interrupt
        self._grace = grace
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Task[R] | None = None
        self._resource: R | None = None
        self._calls = 0
        self._idle = asyncio.Event()
        self._take_back: Callable[[], None] = lambda: None
        self.is_open = False
        """Between `start` and `close`: calls are accepted."""

    def start(self) -> None:
        """Accept calls from now on."""
        self.is_open = True

    def current(self) -> R:
        """The connections, inside `run`."""
        if self._resource is None or self._loop is not asyncio.get_running_loop():
            raise NotOpen(f"{self._name} is not open")
        return self._resource

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        """Await `call()` with the connections open on this loop (`current` gives them).

        :raises NotOpen: the store is not open, or is in use on another running loop.
        """
        if self._resource is None or self._loop is not asyncio.get_running_loop():
            await self._bind()
        self._calls += 1
        self._idle.clear()
        try:
            return await call()
        finally:
            self._calls -= 1
            if not self._calls:
                self._idle.set()

    async def _bind(self) -> None:
        if not self.is_open:
            raise NotOpen(f"{self._name} is not open")
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None and self._loop.is_running():
                raise NotOpen(
                    f"{self._name} is in use on another event loop, which still runs: use "
                    "it from that loop (an app's own calls, such as `Afterward.get`, go there)"
                )
            self._forget()  # that loop stopped without shutting down: its part is gone
            self._loop, self._idle = loop, asyncio.Event()
            self._opening = loop.create_task(self._connect())
            self._take_back = at_shutdown(self._release, late=True)
        opening = self._opening
        assert opening is not None
        try:
            self._resource = await asyncio.shield(opening)
        except BaseException:
            if opening.done() and self._opening is opening:
                self._forget()
            raise

    def _forget(self) -> None:
        self._take_back()
        self._loop = self._opening = self._resource = None

    async def _release(self) -> None:
        """Interrupt waits, give calls under way the grace period, then disconnect."""
        resource, opening = self._resource, self._opening
        self._forget()
        if resource is None:
            if opening is not None:
                opening.cancel()
            return
        await absorbing_cancel(self._interrupt(resource))
        await absorbing_cancel(self._calls_done())
        await absorbing_cancel(self._disconnect(resource))

    async def _calls_done(self) -> None:
        """Until the calls under way have returned, or the grace period is over."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self._grace)

    async def close(self) -> None:
        """Stop accepting calls and close the connections (idempotent)."""
        self.is_open = False
        loop = self._loop
        if loop is None or loop is asyncio.get_running_loop():
            if await absorbing_cancel(self._release()):
                raise asyncio.CancelledError
        elif loop.is_running():
            done = asyncio.run_coroutine_threadsafe(self._release(), loop)
            await asyncio.wait_for(asyncio.wrap_future(done), self._grace + 5.0)
        else:
            log.debug("%s: its event loop stopped; its connections are left", self._name)
            self._forget()
