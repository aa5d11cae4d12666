"""Successes reported together: one `Store.complete_many` call for the tasks of a runner
that finish while the previous call is in flight (group commit of outcomes).

A success reported alone costs a store round trip, and on PostgreSQL or SQLite a commit;
reported together, a burst of short tasks shares both, with no timer: the first success
goes out at once, and what arrives meanwhile waits only for that call to come back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..stores.base import Store

__all__ = ["Completions"]


class Completions:
    """A runner's pending successes on one event loop (futures are bound to it)."""

    def __init__(self, store: Store, worker_id: str, clock: Callable[[], float]) -> None:
        self._store = store
        self._worker_id = worker_id
        self._clock = clock
        self._pending: list[tuple[str, int, asyncio.Future[bool]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def complete(self, job_id: str, attempt: int) -> bool:
        """Report attempt `attempt` of `job_id` as succeeded; True if the store took it
        (False: this worker no longer holds the lease). Store errors are raised."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((job_id, attempt, future))
        if self._sender is None:
            # Its own task: a caller cancelled while it waits does not stop the others' report.
            self._sender = asyncio.create_task(self._send())
        return await future

    async def _send(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    done = await self._store.complete_many(
                        self._worker_id, [(i, a) for i, a, _ in batch], now=self._clock()
                    )
                except Exception as exc:  # each caller decides whether to try again
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for job_id, _, future in batch:
                        if not future.done():
                            future.set_result(job_id in done)
        finally:
            self._sender = None
