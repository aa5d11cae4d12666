"""What ends with an event loop: clean-ups run when the loop that made them shuts down.

psycopg's and redis-py's asyncio connections belong to the loop that opened them, so a
store's connections and an app's runner live on one loop. A loop ends by cancelling every
task left on it (`asyncio.run`, a `TestClient` portal, uvicorn exiting): a guard task per
loop catches that and runs the clean-ups registered on it, the runners' first (they may
still write: handing tasks back) and the connections' after (`late`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import weakref
from collections.abc import Awaitable, Callable

__all__ = ["absorbing_cancel", "at_shutdown"]

log = logging.getLogger("afterward")

CleanUp = Callable[[], Awaitable[None]]

_guards: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Guard]
_guards = weakref.WeakKeyDictionary()
_ids = itertools.count()


class _Guard:
    """The clean-ups of one loop, and the task that runs them at its shutdown."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.clean_ups: dict[int, tuple[bool, CleanUp]] = {}
        self.task = loop.create_task(self._watch(), name="afterward-loop-guard")

    async def _watch(self) -> None:
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        _guards.pop(asyncio.get_running_loop(), None)
        for late in (False, True):
            due = [clean for is_late, clean in self.clean_ups.values() if is_late is late]
            for clean_up in due:
                try:
                    await absorbing_cancel(clean_up())
                except Exception:
                    log.debug("a clean-up at the event loop's shutdown failed", exc_info=True)


def at_shutdown(clean_up: CleanUp, *, late: bool = False) -> Callable[[], None]:
    """Run `clean_up` on the running loop when it shuts down, `late` ones after the
    others; returns the function that takes it back (once it was done another way)."""
    loop = asyncio.get_running_loop()
    guard = _guards.get(loop)
    if guard is None or guard.task.done():
        guard = _guards[loop] = _Guard(loop)
    key = next(_ids)
    guard.clean_ups[key] = (late, clean_up)

    def take_back() -> None:
        guard.clean_ups.pop(key, None)

    return take_back


async def absorbing_cancel(step: Awaitable[object]) -> bool:
    """Await `step` to its end even if the task is cancelled meanwhile (a clean-up that
    must finish while its loop shuts down); return whether it was, for the caller to
    re-raise once its own clean-up is over."""
    future = asyncio.ensure_future(step)
    cancelled = False
    while True:
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.cancelled():
                return True
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            cancelled = True
            continue
        return cancelled
