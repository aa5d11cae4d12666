"""Time for lease decisions: this machine's clock, corrected to the store's clock.

Workers on several machines must agree on when a lease expires. Each samples the store's
clock now and then and applies the offset locally, so no call pays a round trip for time.
"""

from __future__ import annotations

import time

from ..stores.base import Store

__all__ = ["StoreClock"]

_RESYNC_EVERY = 60.0
"""Seconds between samples of the store's clock."""
_MAX_HOLD = 1.0
"""Seconds the clock may stand still rather than go back after a new sample."""
_MAX_ROUND_TRIP = 0.05
"""Seconds: a slower sample of the store's clock is discarded (its error is up to half)."""


class StoreClock:
    """``clock()`` returns the store's time, estimated from a recent sample. A new sample
    a little behind the last one holds it until time catches up (up to `_MAX_HOLD`), so a
    task stored as due at one reading (a request's chain, taken by its own runner right
    after) is still due at the next; a larger step back is a correction, taken at once."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._synced_at = -_RESYNC_EVERY
        self._last = 0.0

    def __call__(self) -> float:
        now = time.time() + self._offset
        if self._last - _MAX_HOLD < now < self._last:
            return self._last
        self._last = now
        return now

    async def sync(self, store: Store) -> None:
        """Sample the store's clock if the last sample is old (half the round trip is
        taken as the delay)."""
        if time.monotonic() - self._synced_at < _RESYNC_EVERY:
            return
        before = time.time()
        remote = await store.now()
        after = time.time()
        if after - before > _MAX_ROUND_TRIP:
            # Under load the reply waited in queues: its midpoint says little about when
            # the store read its clock. Keep the last offset and sample again soon.
            self._synced_at = time.monotonic() - _RESYNC_EVERY + 1.0
            return
        self._offset = remote - (before + after) / 2
        self._synced_at = time.monotonic()

    @property
    def offset(self) -> float:
        """Seconds the store's clock is ahead of this machine's."""
        return self._offset
