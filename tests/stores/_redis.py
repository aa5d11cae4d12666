"""Helpers shared by the Redis store's own tests: prefixes and a plain client."""

from __future__ import annotations

import redis
from servers import REDIS_URL

from afterward.stores.redis.target import parse_redis_url

__all__ = ["prefix_of", "sync_client"]


def prefix_of(url: str) -> str:
    return parse_redis_url(url).prefix


def sync_client(url: str = REDIS_URL) -> redis.Redis:
    return redis.Redis.from_url(url.partition("?")[0], decode_responses=True)
