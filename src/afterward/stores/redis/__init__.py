"""The Redis store (Redis 6.2+ or Valkey): ``redis://host:6379/0?prefix=afterward``.

`store` holds the store (the façade), `connection` its pools and scripts, `target` its
URL, `hashes` the mapping of a task to a Redis hash, `scripts` the Lua scripts of
``lua/``; the operations are in `producing`, `taking`, `outcomes`, `recovery`,
`inspection` and `admin`.
"""

from __future__ import annotations

from .store import RedisStore

__all__ = ["RedisStore"]
