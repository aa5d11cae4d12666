"""Task ids: 32 hex digits that sort by creation time and that no one can guess.

An id is the time in nanoseconds, then 64 bits from the operating system's secure source
(an application's seeded `random` is left alone). The random bits are drawn for 64 ids
at a time: `os.urandom` releases the GIL, and in a sync endpoint's thread every release
hands the interpreter to the event loop, which the thread then waits to get back. One
draw per 64 ids pays that once, for a request's tasks and a bulk enqueue's alike.

The pool is a `deque`, whose `popleft` and `extend` are atomic: threads may take ids at
once, and two that find it empty both refill it with fresh bits. A forked child starts
with an empty pool, so that it never issues the random parts its parent holds.
"""

from __future__ import annotations

import collections
import os
import time

__all__ = ["new_task_id"]

_BATCH = 64
_random_parts: collections.deque[str] = collections.deque()


def new_task_id() -> str:
    """A new task id (see the module)."""
    try:
        random_part = _random_parts.popleft()
    except IndexError:
        drawn = os.urandom(8 * _BATCH).hex()
        _random_parts.extend(drawn[at : at + 16] for at in range(16, len(drawn), 16))
        random_part = drawn[:16]
    return f"{time.time_ns():016x}{random_part}"


os.register_at_fork(after_in_child=_random_parts.clear)
