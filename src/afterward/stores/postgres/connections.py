"""The store's connections: per event loop a pool and a LISTEN `Waker` (`LoopBound`),
opened after the schema is migrated; and one-off connections outside the pools.

Every connection is set up the same way (`Target.configure_session`: the store's schema
alone on the search path, and the settings ``sql/queries.sql`` expects).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from ...errors import StoreError
from ..binding import LoopBound, NotOpen
from .listen import Waker
from .migrate import migrate
from .queries import QUERIES
from .target import Target
from .writes import Conn, check_idle

__all__ = ["Connections"]

T = TypeVar("T")
Pool = AsyncConnectionPool[Conn]

_POOL_TIMEOUT = 10.0
"""Seconds to wait for a pooled connection (or for the first one, at open) before failing."""
_CLOSE_GRACE = 5.0
"""Seconds `close` lets operations under way finish before cancelling them."""


@dataclass
class _LoopConnections:
    """The pool and the wake-up listener."""

    pool: Pool
    waker: Waker


class Connections:
    """Per event loop using the store, a pool of 1 to `max_connections` connections,
    plus one listening connection once it waits for work."""

    def __init__(self, target: Target, max_connections: int) -> None:
        self._target = target
        self._max_connections = max_connections
        self._loops = LoopBound(
            f"the PostgreSQL store {target.url}",
            self._connect,
            _disconnect,
            interrupt=_interrupt,
            grace=_CLOSE_GRACE,
        )

    # -- opening and closing ----------------------------------------------------------

    async def open(self, *, create: bool) -> None:
        """Migrate the schema (see `migrate`) and open this loop's pool. Idempotent."""
        if self._loops.is_open:
            return
        try:
            conn = await psycopg.AsyncConnection.connect(self._target.conninfo, autocommit=True)
            async with conn:
                await migrate(conn, self._target, create=create)
            self._loops.start()
            await self._loops.run(_nothing)
        except psycopg.Error as exc:
            await self._loops.close()
            raise StoreError(f"PostgreSQL store {self._target.url}: {exc}") from exc
        except BaseException:
            await self._loops.close()
            raise

    async def close(self) -> None:
        """Stop listening, let calls under way finish (a few seconds at most) and close
        the pool. Idempotent."""
        await self._loops.close()

    async def _connect(self) -> _LoopConnections:
        pool = Pool(
            self._target.conninfo,
            connection_class=Conn,
            kwargs={"autocommit": True, "row_factory": dict_row},
            min_size=1,
            max_size=self._max_connections,
            open=False,
            configure=self._configure,
            check=check_idle,
            timeout=_POOL_TIMEOUT,
            name=f"afterward-{self._target.schema}",
        )
        try:
            await pool.open(wait=True, timeout=_POOL_TIMEOUT)
        except BaseException:
            await pool.close()
            raise
        return _LoopConnections(pool, Waker(self._target))

    async def _configure(self, conn: Conn) -> None:
        await conn.execute(self._target.configure_session())

    @asynccontextmanager
    async def own_connection(self) -> AsyncIterator[Conn]:
        """A connection outside the pools, closed after use (for a long `Vacuum`)."""
        conn = await Conn.connect(self._target.conninfo, autocommit=True, row_factory=dict_row)
        async with conn:
            await self._configure(conn)
            yield conn

    # -- calls ------------------------------------------------------------------------

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        """Await `call()` with this loop's pool open; psycopg's errors become `StoreError`."""
        try:
            return await self._loops.run(call)
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL store {self._target.url}: {exc}") from exc
        except NotOpen as exc:
            raise StoreError(str(exc)) from None

    def waker(self) -> Waker:
        """This loop's listener, inside `run`."""
        return self._loops.current().waker

    def connection(self) -> AbstractAsyncContextManager[Conn]:
        """A pooled connection of this loop, inside `run`."""
        return self._loops.current().pool.connection()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def one(self, query: str, params: Mapping[str, Any]) -> DictRow | None:
        async with self.connection() as conn:
            cur = await conn.execute(QUERIES[query], params)
            return await cur.fetchone()

    async def all(self, query: str, params: Mapping[str, Any]) -> list[DictRow]:
        async with self.connection() as conn:
            cur = await conn.execute(QUERIES[query], params)
            return await cur.fetchall()


async def _interrupt(conns: _LoopConnections) -> None:
    await conns.waker.close()


async def _disconnect(conns: _LoopConnections) -> None:
    await conns.pool.close()


async def _nothing() -> None:
    """A call that only opens the calling loop's pool."""
