"""What the peers' producers share (standard library only)."""

from __future__ import annotations


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
