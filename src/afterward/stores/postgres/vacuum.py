"""Vacuuming the store's own tables where PostgreSQL's autovacuum does not.

Every task writes three versions of its row (enqueued, taken, finished) and two of its
attempt, so a busy queue leaves dead row versions behind at the rate it runs tasks. With
autovacuum on (PostgreSQL's default), migration 0003 asks it to come at 2 % dead rows
rather than 20 %, and nothing here runs. A server with autovacuum off (some test and
embedded set-ups) never cleans them: the due-task index fills with dead entries and every
acquire walks them, slower and slower over a long run (docs/memory.md). There, the store
runs ``VACUUM (ANALYZE)`` itself when enough rows are dead, from one process at a time (an
advisory lock) and in the background, so lease renewals never wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from .queries import QUERIES
from .writes import Conn

__all__ = ["Vacuum"]

log = logging.getLogger("afterward.stores.postgres")

CHECK_EVERY = 30.0
"""Seconds between two looks at the tables' dead row counts (one cheap statement)."""


class Vacuum:
    """Decides, at most every `CHECK_EVERY` seconds, whether the tables need a vacuum,
    and runs it in a task of its own."""

    def __init__(self, check_every: float = CHECK_EVERY) -> None:
        self._check_every = check_every
        self._next_check = 0.0
        self._running: asyncio.Task[None] | None = None

    def poke(self, connection: Callable[[], AbstractAsyncContextManager[Conn]]) -> None:
        """Start a check (and a vacuum if it is due) unless one ran lately or is running."""
        if time.monotonic() < self._next_check:
            return
        if self._running is not None and not self._running.done():
            return
        self._next_check = time.monotonic() + self._check_every
        self._running = asyncio.get_running_loop().create_task(self._check(connection))

    def cancel(self) -> None:
        """Stop a vacuum under way (the store is closing)."""
        if self._running is not None and not self._running.done():
            self._running.get_loop().call_soon_threadsafe(self._running.cancel)

    async def _check(self, connection: Callable[[], AbstractAsyncContextManager[Conn]]) -> None:
        try:
            async with connection() as conn:
                cur = await conn.execute(QUERIES["vacuum_due"])
                due = [row["relname"] for row in await cur.fetchall()]
                if not due:
                    return
                cur = await conn.execute(QUERIES["vacuum_lock"])
                if not (await cur.fetchone() or {}).get("locked"):
                    return  # another process is vacuuming
                try:
                    started = time.perf_counter()
                    # Table names come from the catalog query above, quoted by PostgreSQL.
                    await conn.execute(f"VACUUM (ANALYZE) {', '.join(due)}")
                    log.info(
                        "vacuumed %s in %.1f s (the server's autovacuum is off)",
                        ", ".join(due),
                        time.perf_counter() - started,
                    )
                finally:
                    await conn.execute(QUERIES["vacuum_unlock"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never fatal: the tables are only slower to read
            log.warning("could not vacuum the store's tables: %s", exc)
