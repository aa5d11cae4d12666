"""The SQLite store's named queries, from its ``sql/queries.sql``."""

from __future__ import annotations

from ..sql_files import load_queries

__all__ = ["QUERIES"]

QUERIES = load_queries("afterward.stores.sqlite")
