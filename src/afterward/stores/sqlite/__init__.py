"""The SQLite store: one file, WAL, `synchronous=FULL`; the embedded default.

`store` holds the store, `connection` its one shared connection; its SQL is in ``sql/``.
"""

from __future__ import annotations

from .store import SQLiteStore

__all__ = ["SQLiteStore"]
