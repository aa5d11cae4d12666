"""Connecting the Redis store: its two pools, the key layout version, its scripts, and a
look at the server's durability settings. Runs on the store's own event loop thread."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from ..errors import SchemaTooNew
from ._redis_support import SCRIPT_NAMES, RedisTarget, durability_warnings, load_script

__all__ = ["SCHEMA_VERSION", "Connection", "close_pools", "connect", "disconnect"]

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
    """An open store's clients: `client` for everything, `waiter` for blocking waits."""

    client: Redis
    waiter: Redis
    scripts: dict[str, AsyncScript] = field(default_factory=dict)


def _pool(url: str, **options: Any) -> ConnectionPool:
    # No automatic retries: re-sending a script whose answer was lost could apply it twice.
    # A blocking pool: a burst of more calls than connections waits for one to come free
    # (redis-py's plain pool fails them with "Too many connections" instead).
    return BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        retry=Retry(NoBackoff(), 0),
        socket_connect_timeout=_CONNECT_TIMEOUT,
        max_connections=_MAX_CONNECTIONS,
        timeout=_POOL_WAIT,
        **options,
    )


async def connect(target: RedisTarget) -> Connection:
    """Connect, check the key layout version and the server's settings, load the scripts.

    :raises SchemaTooNew: the keys were written by a newer afterward.
    :raises redis.RedisError: the server cannot be reached or refused a command.
    """
    client = Redis(connection_pool=_pool(target.client_url))
    try:
        await client.ping()
        await _check_schema(client, target)
        scripts = {name: client.register_script(text) for name, text in _SCRIPTS.items()}
        for script in scripts.values():
            await client.script_load(script.script)
        await _check_durability(client, target)
    except BaseException:
        await client.aclose(close_connection_pool=True)
        raise
    waiter_pool = _pool(target.client_url)
    # A blocking wait outlives the socket timeout: the store bounds it with asyncio instead.
    waiter_pool.connection_kwargs["socket_timeout"] = None
    return Connection(client, Redis(connection_pool=waiter_pool), scripts)


async def _check_schema(client: Redis, target: RedisTarget) -> None:
    key = f"{target.prefix}:schema"
    await client.set(key, SCHEMA_VERSION, nx=True)
    version = int(await client.get(key) or 0)
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


async def disconnect(connection: Connection) -> None:
    """Cancel whatever still runs on this loop (a wait, say), then close both pools."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
    await close_pools(connection)


async def close_pools(connection: Connection) -> None:
    """Close both pools' connections."""
    await connection.waiter.aclose(close_connection_pool=True)
    await connection.client.aclose(close_connection_pool=True)
