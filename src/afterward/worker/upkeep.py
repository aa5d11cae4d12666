"""Keeping a runner's leases alive, and taking back work that dead or silent workers hold."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..config import Settings
from ..stores.base import Store
from .clock import StoreClock
from .health import StoreHealth
from .identity import dead_local_workers
from .leases import Leases
from .loop import first

__all__ = ["Upkeep"]

log = logging.getLogger("afterward.worker")

_RECOVERY_INTERVAL = 1.0
"""Seconds between looks for work held by dead or expired workers, while tasks run."""
_IDLE_RECOVERY_INTERVAL = 10.0
"""The same once nothing has run for `_IDLE_AFTER` seconds: each look is a store call."""
_IDLE_AFTER = 10.0


class Upkeep:
    """Renews what `leases` holds for `worker_id`, and recovers what others lost."""

    def __init__(
        self,
        store: Store,
        worker_id: str,
        clock: Callable[[], float],
        settings: Settings,
        leases: Leases,
        health: StoreHealth,
        found_work: Callable[[], None] = lambda: None,
    ) -> None:
        self._store = store
        self._worker_id = worker_id
        self._clock = clock
        self._settings = settings
        self._leases = leases
        self._health = health
        self._found_work = found_work
        """Called when this upkeep put tasks back in the queue: the store's signal of new
        work may reach another waiting connection first (on Redis, a frozen worker's)."""
        self._busy_at = time.monotonic()

    def busy(self) -> None:
        """Tasks were just taken: look for lost work at the busy pace for a while."""
        self._busy_at = time.monotonic()

    async def maintain(self, stop: asyncio.Event) -> None:
        """Until `stop`: renew held leases every third of a lease; take back lost work
        every second while tasks run (every few seconds when idle); keep the clock in step
        with the store's."""
        renew_every = self._settings.lease / 3
        last_renewal = last_recovery = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if self._leases:
                self._busy_at = now
            idle = now - self._busy_at > _IDLE_AFTER
            try:
                if isinstance(self._clock, StoreClock):
                    await self._clock.sync(self._store)
                if now - last_renewal >= renew_every:
                    await self.renew_leases()
                    last_renewal = now
                if now - last_recovery >= (_IDLE_RECOVERY_INTERVAL if idle else 0):
                    await self.recover()
                    last_recovery = now
                self._health.answered()
            except Exception as exc:  # the store, or a transient lack of memory or threads
                self._health.failed("renewing leases", exc)
            await first(stop.wait(), asyncio.sleep(min(_RECOVERY_INTERVAL, renew_every)))

    async def renew_leases(self) -> None:
        """Extend every lease and reservation held; forget the ones lost.

        A reservation no chain claimed within a lease (its response's background never
        ran: the client went away mid-stream) is handed to the queue instead, so that
        any worker runs it.
        """
        await self._release_unclaimed()
        held = self._leases.ids()
        if not held:
            return
        kept = await self._store.extend_leases(
            self._worker_id, held, now=self._clock(), lease=self._settings.lease
        )
        for job_id in self._leases.drop(set(held) - kept - self._leases.settling):
            log.warning("task %s: lease lost; another worker may run it", job_id)

    async def _release_unclaimed(self) -> None:
        stale = self._leases.unclaimed(for_longer_than=self._settings.lease)
        if not stale:
            return
        await self._store.release(self._worker_id, stale, now=self._clock())
        self._leases.drop(stale)
        self._found_work()
        log.warning(
            "%d reserved task(s) were never started by their request (was its response "
            "cut short?); handed to the queue: %s",
            len(stale),
            ", ".join(stale[:5]),
        )

    async def recover(self) -> int:
        """Take back tasks whose lease expired or whose holder's process is gone."""
        dead = dead_local_workers(await self._store.lease_holders())
        taken = await self._store.recover(now=self._clock(), dead_workers=dead)
        if taken:
            self._found_work()
            log.warning("took back %d task(s) from dead or expired workers %s", taken, dead)
        return taken
