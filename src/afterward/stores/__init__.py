"""Stores, chosen by URL. Core code never imports a concrete store; `open_store` does, lazily.

==============================  ============================  ==============================
scheme                          store                         extra
==============================  ============================  ==============================
``sqlite:///path``              `afterward.stores.sqlite`      none (standard library)
``postgresql://…?schema=name``  `afterward.stores.postgres`    ``afterward[postgres]``
``redis://…?prefix=name``       `afterward.stores.redis`       ``afterward[redis]``
==============================  ============================  ==============================
"""

from __future__ import annotations

from ..errors import ConfigurationError
from .base import Counts, JobFilter, Store
from .urls import redact_url

__all__ = ["Counts", "JobFilter", "Store", "store_from_url"]


def store_from_url(url: str) -> Store:
    """A closed store for `url`; call `await store.open()` before use.

    :raises ConfigurationError: the scheme is unknown, or its extra is not installed.
    """
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore(url)
    if scheme in ("postgresql", "postgres"):
        try:
            from .postgres import PostgresStore
        except ImportError as exc:
            raise _missing("postgres", exc) from exc
        return PostgresStore(url)
    if scheme in ("redis", "rediss", "valkey", "valkeys"):
        try:
            from .redis import RedisStore
        except ImportError as exc:
            raise _missing("redis", exc) from exc
        return RedisStore(url)
    raise ConfigurationError(
        f"unknown store URL {redact_url(url)!r}: expected sqlite:///path/to/file.db, "
        "postgresql://user@host/db or redis://host:6379/0"
    )


def _missing(extra: str, exc: ImportError) -> ConfigurationError:
    return ConfigurationError(
        f"the {extra} store needs an extra package ({exc.name or exc}): "
        f"pip install 'afterward[{extra}]'"
    )
