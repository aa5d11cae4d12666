"""Plumbing for the PostgreSQL store: its URL, its schema migrations, its wake-up listener."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from ..errors import ConfigurationError, SchemaTooNew, StoreError
from ._sql import load_migrations, load_queries, load_schema

__all__ = ["QUERIES", "Target", "Waker", "migrate"]

log = logging.getLogger("afterward.stores.postgres")

QUERIES = load_queries("postgres")

DEFAULT_SCHEMA = "afterward"
_MAX_IDENTIFIER = 63
"""PostgreSQL's longest name, in bytes (NAMEDATALEN - 1); channel names included."""
_LISTEN_CHECK = 30.0
"""Seconds between checks that the listening connection still works."""
_BACKOFF = (0.1, 5.0)
"""First and longest pause between attempts to reconnect the listener, in seconds."""


@dataclass(frozen=True)
class Target:
    """Where a store lives, parsed from its URL."""

    url: str
    """The URL without its password, for messages."""
    conninfo: str
    """The URL psycopg connects with: ours minus ``schema``."""
    schema: str
    channel: str
    """The LISTEN/NOTIFY channel of the schema's store."""
    lock_key: int
    """The advisory lock key serializing the schema's migrations."""

    @classmethod
    def from_url(cls, url: str) -> Target:
        """Parse ``postgresql://user:password@host:port/db?schema=name&sslmode=...``.

        :raises ConfigurationError: the schema name is empty or too long.
        """
        parts = urlsplit(url)
        # Split the query by hand: re-encoding it could change what libpq reads.
        items = [item for item in parts.query.split("&") if item]
        ours = [unquote(i.partition("=")[2]) for i in items if _key(i) == "schema"]
        schema = ours[-1] if ours else DEFAULT_SCHEMA
        if not schema or len(schema.encode()) > _MAX_IDENTIFIER:
            raise ConfigurationError(
                f"invalid schema name {schema!r} in the store URL: it must have 1 to "
                f"{_MAX_IDENTIFIER} bytes"
            )
        rest = "&".join(i for i in items if _key(i) != "schema")
        conninfo = urlunsplit(parts._replace(query=rest))
        shown = "&".join(i for i in items if _key(i) != "password")
        userinfo, at, hosts = parts.netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}{at}{hosts}"
        shown_url = urlunsplit(parts._replace(netloc=netloc, query=shown))
        digest = hashlib.sha256(f"afterward:{schema}".encode()).digest()
        channel = f"afterward:{schema}"
        if len(channel.encode()) > _MAX_IDENTIFIER:
            channel = f"afterward:{digest.hex()[:32]}"
        lock_key = int.from_bytes(digest[:8], "big", signed=True)
        return cls(shown_url, conninfo, schema, channel, lock_key)

    def configure_session(self) -> sql.Composed:
        """The statements setting up a connection: unqualified names are this schema's."""
        query = sql.SQL(QUERIES["configure_session"])
        return query.format(schema=sql.Identifier(self.schema))


def _key(item: str) -> str:
    return unquote(item.partition("=")[0])


async def migrate(
    conn: psycopg.AsyncConnection[TupleRow], target: Target, *, create: bool = True
) -> None:
    """Create or upgrade `target`'s schema, in one transaction, one process at a time.

    :param create: False: a schema that does not exist, or holds no afterward store, is
        not created; `StoreError` says so.
    :raises SchemaTooNew: the schema is newer than this code.
    :raises StoreError: no store there, and `create` is False.
    """
    migrations = load_migrations("postgres")
    latest = migrations[-1].version
    async with conn.transaction():
        await conn.execute(QUERIES["lock_schema"], {"key": target.lock_key})
        cur = await conn.execute(QUERIES["schema_state"], {"schema": target.schema})
        has_schema, has_version = await cur.fetchone() or (False, False)
        if not create and not has_version:
            what = "holds no afterward tables" if has_schema else "does not exist"
            raise StoreError(f"no afterward store at {target.url}: schema {target.schema!r} {what}")
        if not has_schema:
            statement = sql.SQL(QUERIES["create_schema"])
            await conn.execute(statement.format(schema=sql.Identifier(target.schema)))
        await conn.execute(target.configure_session())
        version = 0
        if has_version:
            cur = await conn.execute(QUERIES["schema_version"])
            version = int((await cur.fetchone() or (0,))[0])
        if version > latest:
            raise SchemaTooNew(
                f"the PostgreSQL store {target.url} has schema version {version}, newer than "
                f"this afterward's {latest}: upgrade afterward"
            )
        if version == latest:
            return
        if version == 0:
            await conn.execute(load_schema("postgres"))
        else:
            for migration in migrations:
                if migration.version > version:
                    await conn.execute(migration.sql)
        await conn.execute(QUERIES["record_version"], {"version": latest})
        log.info("PostgreSQL store %s: schema at version %d", target.url, latest)


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
