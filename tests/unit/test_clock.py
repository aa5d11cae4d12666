"""StoreClock: workers agree on the store's time, not their own."""

from __future__ import annotations

import time

from afterward.worker.clock import StoreClock


class AheadStore:
    """A store whose clock runs 100 s ahead of this machine's."""

    def __init__(self) -> None:
        self.calls = 0

    async def now(self) -> float:
        self.calls += 1
        return time.time() + 100.0


async def test_clock_follows_the_stores_time_and_samples_it_rarely() -> None:
    # Given a clock and a store 100 s ahead
    clock, store = StoreClock(), AheadStore()
    # When it syncs (twice in a row)
    await clock.sync(store)  # type: ignore[arg-type]
    await clock.sync(store)  # type: ignore[arg-type]
    # Then it reads the store's time, and sampled it only once
    assert abs(clock() - (time.time() + 100.0)) < 0.5
    assert abs(clock.offset - 100.0) < 0.5
    assert store.calls == 1


class SlowStore:
    """A store 100 s ahead whose replies take 0.2 s (a loaded machine)."""

    async def now(self) -> float:
        import asyncio

        await asyncio.sleep(0.2)
        return time.time() + 100.0


async def test_a_slow_sample_is_discarded() -> None:
    # Given a clock and a store that answers slowly
    clock = StoreClock()
    # When it syncs, Then the unreliable sample is not used
    await clock.sync(SlowStore())  # type: ignore[arg-type]
    assert clock.offset == 0.0
