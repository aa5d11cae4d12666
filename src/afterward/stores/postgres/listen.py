"""The PostgreSQL store's wake-up listener: a LISTEN connection on the schema's channel."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
from psycopg import sql

from .queries import QUERIES
from .target import Target

__all__ = ["Waker"]

log = logging.getLogger("afterward.stores.postgres")

_LISTEN_CHECK = 30.0
"""Seconds between checks that the listening connection still works."""
_BACKOFF = (0.1, 5.0)
"""First and longest pause between attempts to reconnect the listener, in seconds."""


class Waker:
    """Hints that new work may be due, from this store's writes and other processes' NOTIFY.

    Lives on the store's event loop. A dedicated
    connection (not from the pool) LISTENs on the schema's channel; while it is down,
    waits simply run out their timeout (polling).
    """

    def __init__(self, target: Target) -> None:
        self._target = target
        self._wakes = 0
        self._seen = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.listening = False

    def start(self) -> None:
        """Start listening, if not already (lazily: only processes that take work listen)."""
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._listen(), name="afterward-postgres-listen")

    def mark(self) -> None:
        """Note that the caller is about to look for work: earlier hints are used up."""
        self._seen = self._wakes

    def wake(self) -> None:
        """Note a hint and release every waiter."""
        self._wakes += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def wrote(self) -> None:
        """This store committed new work: a hint, unless its NOTIFY will come back to us."""
        if not self.listening:
            self.wake()

    async def wait(self, timeout: float) -> None:
        """Return at the first hint since `mark`, or after `timeout` seconds."""
        self.start()
        if self._wakes == self._seen and not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        self._seen = self._wakes

    async def close(self) -> None:
        """Stop listening and release the waiters."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            if not task.cancelling():  # a loop shutting down has cancelled it already
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.wake()

    async def _listen(self) -> None:
        pause = _BACKOFF[0]
        while True:
            try:
                await self._listen_once()
            except (psycopg.Error, OSError, TimeoutError) as exc:
                if self.listening:  # it worked for a while: start backing off afresh
                    pause = _BACKOFF[0]
                log.warning(
                    "PostgreSQL store %s: listening for new work failed (%s); polling "
                    "until it reconnects in %.1f s",
                    self._target.url,
                    exc,
                    pause,
                )
            self.listening = False
            await asyncio.sleep(pause)
            pause = min(pause * 2, _BACKOFF[1])

    async def _listen_once(self) -> None:
        conn = await psycopg.AsyncConnection.connect(self._target.conninfo, autocommit=True)
        async with conn:
            listen = sql.SQL(QUERIES["listen"]).format(channel=sql.Identifier(self._target.channel))
            await conn.execute(listen)
            self.listening = True
            self.wake()  # notifications sent while not listening were missed
            while True:
                async for _ in conn.notifies(timeout=_LISTEN_CHECK):
                    self.wake()
                await asyncio.wait_for(conn.execute(QUERIES["ping"]), _LISTEN_CHECK)
