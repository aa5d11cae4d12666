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


class BehindStore:
    """A store whose clock is `behind` seconds behind this machine's."""

    def __init__(self, behind: float) -> None:
        self.behind = behind

    async def now(self) -> float:
        return time.time() - self.behind


async def test_a_sample_slightly_behind_holds_the_clock_instead_of_going_back() -> None:
    # Given a clock read before its first sample (as a request's chain is stored at start)
    clock = StoreClock()
    before = clock()
    # When it samples a store 0.3 s behind, Then it does not read earlier than before
    await clock.sync(BehindStore(0.3))  # type: ignore[arg-type]
    assert clock() >= before
    # And once time has caught up, it follows the store
    time.sleep(0.35)
    assert abs(clock() - (time.time() - 0.3)) < 0.05


async def test_a_large_correction_is_taken_at_once() -> None:
    # Given a clock read before sampling a store 100 s behind
    clock = StoreClock()
    clock()
    # When it samples it, Then it reads the store's time at once
    await clock.sync(BehindStore(100.0))  # type: ignore[arg-type]
    assert abs(clock() - (time.time() - 100.0)) < 0.5
