"""Stores, chosen by URL. Core code never imports a concrete store; `open_store` does, lazily.

=====================  ==============================  ======================================
scheme                 store                           extra
=====================  ==============================  ======================================
``sqlite:///path``     `afterward.stores.sqlite`        none (standard library)
=====================  ==============================  ======================================
"""

from __future__ import annotations

from ..errors import ConfigurationError
from .base import Counts, JobFilter, Store

__all__ = ["Counts", "JobFilter", "Store", "store_from_url"]


def store_from_url(url: str) -> Store:
    """A closed store for `url`; call `await store.open()` before use.

    :raises ConfigurationError: the scheme is unknown, or its extra is not installed.
    """
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore(url)
    if scheme in ("postgresql", "postgres", "redis", "rediss"):
        raise ConfigurationError(
            f"the {scheme} store is not available in this version of afterward yet; "
            "use sqlite:///path/to/file.db"
        )
    raise ConfigurationError(f"unknown store URL {url!r}: expected sqlite:///path/to/file.db")
