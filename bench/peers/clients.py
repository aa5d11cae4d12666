"""What the peer modules share (standard library only: each runs in its peer's own
virtualenv): the variant a run is at, and a producer for libraries that enqueue with a
plain (blocking) call."""

from __future__ import annotations

import os

SETTING_ENV = "AW_BENCH_SETTING"
"""``NAME=VALUE``: the one setting of the tuned variant (`bench.compare`'s SYSTEMS table
states it; ``driver.py --setting`` sets it, and the worker processes inherit it). Unset,
the peer runs at its defaults: that is also how `bench.web` runs its endpoints."""


def tuned(name: str) -> str | None:
    """The value of this run's tuned setting, or None at the defaults. `name` is the one
    setting the calling peer module knows how to apply: any other fails the run, rather than
    measure the defaults under a tuned label."""
    setting = os.environ.get(SETTING_ENV, "")
    if not setting:
        return None
    key, _, value = setting.partition("=")
    if key != name or not value:
        raise SystemExit(f"this peer's tuned setting is {name}=VALUE, not {setting!r}")
    return value


class SyncClient:
    """A producer whose library enqueues with a plain (blocking) call, one task at a time:
    a subclass says how in `send`."""

    def __init__(self, url: str) -> None:
        self.url = url

    def send(self, enqueued_at: float) -> None:
        """Enqueue one task."""
        raise NotImplementedError

    async def start(self) -> None:
        """Nothing to open: the library connects on first use."""

    async def enqueue(self, enqueued_at: float) -> None:
        self.send(enqueued_at)

    async def enqueue_many(self, times: list[float]) -> None:
        """One call per task: the library has no bulk enqueue."""
        for t in times:
            self.send(t)

    async def close(self) -> None:
        """Nothing to close."""
