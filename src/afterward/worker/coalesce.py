"""Store calls made together: the calls of one kind that a runner makes while the previous
one is in flight go to the store as one batch call (group commit of outcomes, and of the
acquires of a web process's concurrent chains).

A call alone costs a store round trip, and on PostgreSQL or SQLite a commit; made together,
a burst shares both, with no timer: the first call goes out at once, and what arrives
meanwhile waits only for that one to come back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

Item = TypeVar("Item")
Result = TypeVar("Result")


class Coalescer(Generic[Item, Result]):
    """Batches `call(item)` into `send(items)`, on one event loop (its futures are bound
    to it). `send` returns one result per item, in order; its errors reach every caller
    of the batch, each deciding whether to try again."""

    def __init__(self, send: Callable[[list[Item]], Awaitable[Sequence[Result]]]) -> None:
        self._send = send
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def call(self, item: Item) -> Result:
        """`item`'s result, from the next batch sent."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._sender is None:
            # Its own task: a caller cancelled while it waits does not stop the others' call.
            self._sender = asyncio.create_task(self._send_pending())
        return await future

    async def _send_pending(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results = await self._send([item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        if not future.done():
                            future.set_result(result)
        finally:
            self._sender = None
