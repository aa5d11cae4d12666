"""The app the throughput benchmark's workers run: no-op tasks."""

from afterward import Afterward

afterward = Afterward()


def noop(n: int) -> None:
    """A plain function that does nothing (runs in the worker's thread pool)."""


async def anoop(n: int) -> None:
    """A coroutine that does nothing (runs on the worker's event loop)."""
