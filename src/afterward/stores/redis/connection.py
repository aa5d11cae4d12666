"""Connecting the Redis store: one loop's two pools and scripts, the key layout version,
and a look at the server's durability settings. The operations (`producing`, `taking`,
`outcomes`, `recovery`, `inspection`, `admin`) each take the `Connection` of the loop
they run on."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from redis._parsers.encoders import Encoder
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from ...errors import SchemaTooNew, StoreError
from .scripts import SCRIPT_NAMES, load_script
from .target import RedisTarget, durability_warnings

__all__ = ["SCHEMA_VERSION", "Connection", "check_server", "close_pools", "connect", "interrupt"]

log = logging.getLogger("afterward.store")

SCHEMA_VERSION = 1
"""The version of the key layout, kept in ``<prefix>:schema``."""

_SCRIPTS = {name: load_script(name) for name in SCRIPT_NAMES}
_CONNECT_TIMEOUT = 10.0
_MAX_CONNECTIONS = 32
"""Connections per pool (``?max_connections=`` in the URL overrides it)."""
_POOL_WAIT = 30.0
"""Seconds a call waits for a free connection before failing."""


@dataclass
class Connection:
    """An open store's clients: `client` for everything, `waiter` for blocking waits; its
    key prefix, and its scripts."""

    client: Redis
    waiter: Redis
    prefix: str
    scripts: dict[str, AsyncScript] = field(default_factory=dict)

    def key(self, *parts: str) -> str:
        """The key ``prefix:part:...``."""
        return ":".join((self.prefix, *parts))

    async def run_script(self, name: str, *args: str | int) -> Any:
        """Run ``lua/<name>.lua`` with the prefix as its first argument (redis-py loads
        it again on NOSCRIPT)."""
        return await self.scripts[name](keys=[], args=[self.prefix, *args])


class _LenientReplies(Encoder):
    """Replies decoded with ``surrogateescape`` (the pool's `encoding_errors`), commands
    encoded strictly. A value stored by hand that is not UTF-8 then reads as text with
    surrogates for its bad bytes (`hashes` reads such a job as corrupt) instead of
    failing the whole reply: an acquire's, which has already taken its tasks, or a
    listing's. Commands stay strict, so that text with surrogates is refused, as the
    other stores refuse it, rather than stored as bytes that are not UTF-8."""

    __slots__ = ()

    def encode(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.encode(self.encoding)
        return super().encode(value)  # type: ignore[no-untyped-call]


def _pool(url: str, **options: Any) -> ConnectionPool:
    # No automatic retries: re-sending a script whose answer was lost could apply it twice.
    # A blocking pool: a burst of more calls than connections waits for one to come free
    # (redis-py's plain pool fails them with "Too many connections" instead).
    return BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        encoding_errors="surrogateescape",
        encoder_class=_LenientReplies,
        retry=Retry(NoBackoff(), 0),
        socket_connect_timeout=_CONNECT_TIMEOUT,
        max_connections=_MAX_CONNECTIONS,
        timeout=_POOL_WAIT,
        **options,
    )


async def connect(target: RedisTarget) -> Connection:
    """The calling event loop's clients and scripts (connections open on first use)."""
    client = Redis(connection_pool=_pool(target.client_url))
    waiter_pool = _pool(target.client_url)
    # A blocking wait outlives the socket timeout: the store bounds it with asyncio instead.
    waiter_pool.connection_kwargs["socket_timeout"] = None
    scripts = {name: client.register_script(text) for name, text in _SCRIPTS.items()}
    return Connection(client, Redis(connection_pool=waiter_pool), target.prefix, scripts)


async def check_server(connection: Connection, target: RedisTarget, *, create: bool = True) -> None:
    """Check the key layout version and the server's settings, and load the scripts.

    :param create: False: where no afterward store was ever opened (no ``prefix:schema``
        key) write nothing and raise `StoreError`.
    :raises SchemaTooNew: the keys were written by a newer afterward.
    :raises StoreError: no store there, and `create` is False.
    :raises redis.RedisError: the server cannot be reached or refused a command.
    """
    client = connection.client
    await client.ping()
    await _check_schema(client, target, create)
    for script in connection.scripts.values():
        await client.script_load(script.script)
    await _check_durability(client, target)


async def _check_schema(client: Redis, target: RedisTarget, create: bool) -> None:
    key = f"{target.prefix}:schema"
    if create:
        await client.set(key, SCHEMA_VERSION, nx=True)
    version = int(await client.get(key) or 0)
    if not create and not version:
        raise StoreError(f"no afterward store at {target.display}: no key {key!r}")
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{target.display} has key layout version {version}, newer than this "
            f"afterward's {SCHEMA_VERSION}: upgrade afterward"
        )


async def _check_durability(client: Redis, target: RedisTarget) -> None:
    config: dict[str, str] | None = {}
    try:
        for name in ("maxmemory-policy", "appendonly", "appendfsync"):  # one by one: 6.2
            answer = await client.config_get(name)
            config = {**(config or {}), **{str(k): str(v) for k, v in answer.items()}}
    except ResponseError:  # managed servers may refuse or rename CONFIG
        config = None
    for message in durability_warnings(target.display, config):
        log.warning(message)


async def interrupt(connection: Connection) -> None:
    """End the waits for work under way (their connections are dropped)."""
    await connection.waiter.connection_pool.disconnect()


async def close_pools(connection: Connection) -> None:
    """Close both pools' connections."""
    await connection.waiter.aclose(close_connection_pool=True)
    await connection.client.aclose(close_connection_pool=True)
