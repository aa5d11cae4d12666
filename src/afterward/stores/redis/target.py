"""Where a Redis store lives, from its URL, and what its server's settings put at risk."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...errors import ConfigurationError

__all__ = ["RedisTarget", "durability_warnings", "parse_redis_url"]

DEFAULT_PREFIX = "afterward"

_SCHEMES = {"redis": "redis", "rediss": "rediss", "valkey": "redis", "valkeys": "rediss"}


@dataclass(frozen=True)
class RedisTarget:
    """Where a store URL points: what redis-py connects to, and our key prefix."""

    client_url: str
    """The URL for redis-py: valkey:// mapped to redis://, without our `prefix` option."""
    prefix: str
    """Every key of the store starts with ``prefix + ":"``."""
    display: str
    """The URL as given, with any password removed, for messages."""


def parse_redis_url(url: str) -> RedisTarget:
    """Split ``redis://host:port/db?prefix=NAME`` (or rediss://, valkey://, valkeys://).

    :raises ConfigurationError: not a Redis URL, or an empty prefix.
    """
    from ..urls import redact_url

    parts = urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        shown = redact_url(url)
        raise ConfigurationError(f"not a Redis URL: {shown!r} (expected redis://host:6379/0)")
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for name, value in query if name == "prefix"]
    prefix = prefixes[-1] if prefixes else DEFAULT_PREFIX
    if not prefix:
        shown = redact_url(url)
        raise ConfigurationError(f"the prefix of the Redis store URL {shown!r} is empty")
    rest = urlencode([(name, value) for name, value in query if name != "prefix"])
    client_url = urlunsplit((scheme, parts.netloc, parts.path, rest, ""))
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username}@{host}" if parts.username else host
    shown = "&".join(p for p in parts.query.split("&") if p.partition("=")[0] != "password")
    display = urlunsplit((parts.scheme, netloc, parts.path, shown, ""))
    return RedisTarget(client_url=client_url, prefix=prefix, display=display)


_LOSS = (
    "an acknowledged task may be lost on a Redis crash: with appendfsync everysec up to "
    "~1 s of writes; with AOF off, everything since the last snapshot"
)


def durability_warnings(url: str, config: Mapping[str, str] | None) -> list[str]:
    """What to warn about a server with `config` (CONFIG GET answers; None if refused)."""
    if config is None:
        return [
            f"Redis store {url}: could not check the server's durability settings (CONFIG "
            "GET was refused). Make sure maxmemory-policy is noeviction (else Redis may evict "
            f"tasks), and appendonly yes with appendfsync always, or {_LOSS}"
        ]
    warnings = []
    policy = config.get("maxmemory-policy", "")
    if policy != "noeviction":
        warnings.append(
            f"Redis store {url}: maxmemory-policy is {policy!r}, not 'noeviction': under "
            "memory pressure Redis may evict tasks silently. Set maxmemory-policy noeviction"
        )
    if config.get("appendonly", "") != "yes":
        warnings.append(
            f"Redis store {url}: AOF is off (appendonly no): {_LOSS}. "
            "Set appendonly yes and appendfsync always"
        )
    elif (fsync := config.get("appendfsync", "")) != "always":
        warnings.append(
            f"Redis store {url}: appendfsync is {fsync!r}, not 'always': {_LOSS}. "
            "Set appendfsync always"
        )
    return warnings
