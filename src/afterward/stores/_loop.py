"""A store's connections, one set per event loop that uses it.

psycopg's and redis-py's asyncio connections belong to the event loop that opened them,
and one store serves coroutines on several loops: a web server's, the embedded worker's,
one per `TestClient` portal. So each loop gets its own connections, opened at its first
call and closed by the store's `close`, or when that loop shuts down. Every call runs on
its caller's loop. (An earlier design sent every call to one private loop thread: the two
thread wake-ups and GIL hand-offs of each call cost more than the call itself.)
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

__all__ = ["NotOpen", "PerLoop"]

R = TypeVar("R")
T = TypeVar("T")

log = logging.getLogger("afterward.store")

_HANDOFF_MARGIN = 5.0
"""Seconds beyond the grace period that `close` waits for another loop to close its part."""


class NotOpen(Exception):
    """The store is not open (or was closed), or this loop has no connections yet."""


class _Slot(Generic[R]):
    """One loop's connections and the calls using them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, opening: asyncio.Task[R]) -> None:
        self.loop = loop
        self.opening = opening
        self.resource: R | None = None
        self.calls = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.guard: asyncio.Task[None] | None = None
        self.closed = False


class PerLoop(Generic[R]):
    """Connections (`R`) per event loop, made by `connect` and closed by `disconnect`.

    `run` is how a store's method uses them. `close` first ends each loop's waits for work
    (`interrupt`), then waits up to `grace` seconds for the calls under way on that loop,
    then closes its connections.
    """

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
        self._lock = threading.Lock()
        self._slots: dict[asyncio.AbstractEventLoop, _Slot[R]] = {}
        self.is_open = False
        """Between `start` and `close`: calls are accepted."""

    def start(self) -> None:
        """Accept calls from now on."""
        self.is_open = True

    def current(self) -> R:
        """The running loop's connections, inside `run`."""
        slot = self._slots.get(asyncio.get_running_loop())
        if slot is None or slot.resource is None:
            raise NotOpen(f"{self._name} has no connections on this event loop")
        return slot.resource

    def each(self) -> list[tuple[asyncio.AbstractEventLoop, R]]:
        """Every loop's connections, for hints sent across loops."""
        with self._lock:
            slots = list(self._slots.values())
        return [(s.loop, s.resource) for s in slots if s.resource is not None]

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        """Await `call()` with this loop's connections opened (`current` gives them).

        :raises NotOpen: the store is not open.
        """
        slot = await self._slot()
        slot.calls += 1
        slot.idle.clear()
        try:
            return await call()
        finally:
            slot.calls -= 1
            if not slot.calls:
                slot.idle.set()

    async def _slot(self) -> _Slot[R]:
        loop = asyncio.get_running_loop()
        slot = self._slots.get(loop)
        if slot is None or slot.resource is None:
            with self._lock:
                if not self.is_open:
                    raise NotOpen(f"{self._name} is not open")
                slot = self._slots.get(loop)
                if slot is None:
                    slot = _Slot(loop, loop.create_task(self._connect()))
                    self._slots[loop] = slot
            try:
                resource = await asyncio.shield(slot.opening)
            except BaseException:
                if slot.opening.done():
                    self._forget(slot)
                if slot.opening.cancelled() and not _cancelled_from_outside():
                    raise NotOpen(f"{self._name} was closed while connecting") from None
                raise
            if slot.resource is None:
                slot.resource = resource
                slot.guard = loop.create_task(self._guard(slot), name=f"{self._name}-guard")
        return slot

    def _forget(self, slot: _Slot[R]) -> None:
        with self._lock:
            if self._slots.get(slot.loop) is slot:
                del self._slots[slot.loop]

    async def _guard(self, slot: _Slot[R]) -> None:
        """Close the slot when its loop shuts down (which cancels every task left)."""
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            self._forget(slot)
            await self._close_slot(slot)

    async def _close_slot(self, slot: _Slot[R]) -> None:
        if slot.closed:
            return
        slot.closed = True
        if slot.guard is not None and slot.guard is not asyncio.current_task():
            slot.guard.cancel()
        resource = slot.resource
        if resource is None:
            slot.opening.cancel()
            return
        # The loop may shut down while this runs (its last call returned because of the
        # interrupt): that cancels this task too, and the connections must close anyway.
        cancelled = await _through_cancel(self._interrupt(resource))
        cancelled |= await _through_cancel(asyncio.wait_for(slot.idle.wait(), self._grace))
        if await _through_cancel(self._disconnect(resource)):
            cancelled = True
            await _through_cancel(self._disconnect(resource))  # what the cancel cut short
        if cancelled:
            raise asyncio.CancelledError

    async def close(self) -> None:
        """Stop accepting calls; close every loop's connections (idempotent)."""
        with self._lock:
            self.is_open = False
            slots = list(self._slots.values())
            self._slots.clear()
        here = asyncio.get_running_loop()
        for slot in slots:
            try:
                if slot.loop is here:
                    await self._close_slot(slot)
                elif not slot.loop.is_closed():
                    done = asyncio.run_coroutine_threadsafe(self._close_slot(slot), slot.loop)
                    if slot.loop.is_running():  # else it closes when that loop next runs
                        bound = self._grace + _HANDOFF_MARGIN
                        await asyncio.wait_for(asyncio.wrap_future(done), bound)
            except (Exception, asyncio.CancelledError) as exc:
                if isinstance(exc, asyncio.CancelledError) and _cancelled_from_outside():
                    raise
                log.debug("%s: closing one loop's connections failed", self._name, exc_info=True)


def _cancelled_from_outside() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _through_cancel(step: Awaitable[object]) -> bool:
    """Await `step`; return whether the task was cancelled meanwhile (the cancel is
    absorbed, for the caller to re-raise once its clean-up is over)."""
    try:
        await step
    except TimeoutError:
        pass
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return True
    return False
