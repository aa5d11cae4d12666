"""Helpers shared by the PostgreSQL store's own tests: raw connections and the server's
view of a store's connections."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import psycopg
from servers import POSTGRES_URL

from afterward.stores.postgres.target import Target

__all__ = ["BOUND", "backends", "raw_connection", "schema_of", "terminate", "until"]

BOUND = 10.0
"""A generous bound for "promptly": only a hang fails, never a slow machine."""


def schema_of(url: str) -> str:
    return Target.from_url(url).schema


def raw_connection() -> psycopg.Connection[Any]:
    return psycopg.connect(POSTGRES_URL, autocommit=True)


def backends(app: str, *, listening: bool = False) -> set[int]:
    """The server processes serving connections named `app` (only the listener's: idle
    after its LISTEN)."""
    query = "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
    if listening:
        query += " AND query LIKE 'LISTEN%%' AND state = 'idle'"
    with raw_connection() as conn:
        return {pid for (pid,) in conn.execute(query, [app]).fetchall()}


def terminate(pids: set[int]) -> None:
    with raw_connection() as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", [pid])


async def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
