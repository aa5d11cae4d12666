"""Floors: what one durable write or one round trip costs on this machine, with no queue.

    .venv/bin/python -m bench.floors [--n 2000]

A one-at-a-time enqueue waits for its store before the next one starts, so it can never be
cheaper than the store's own durable write (SQLite, PostgreSQL) or one round trip through
the client the product uses (Redis keeps nothing on disk here). `bench.compare` measures
these floors in every round, beside the systems, and the report sets them against what
each target needs: a target whose budget per enqueue is below the floor cannot be met by
any code on top of that store and client.

- SQLite: one ``INSERT`` and ``COMMIT`` with ``synchronous=FULL`` (the durability the
  README promises), in WAL mode (afterward's and Huey's) and with the rollback journal
  (SQLite's own default); the floor is the faster of the two.
- PostgreSQL: one ``INSERT`` in autocommit through psycopg's asyncio connection (the commit
  waits for the WAL flush), and a bare ``SELECT 1`` round trip.
- Redis: one ``PING`` through redis-py's asyncio client (hiredis parser), and through its
  blocking client for comparison (the one Huey and Dramatiq use; it would stall an event
  loop).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

WARM_UP = 50


def _per_op_us(started: float, n: int) -> float:
    return (time.perf_counter() - started) / n * 1e6


def _timed_blocking(call: Callable[[], object], n: int) -> float:
    """µs per `call`, over `n` calls after `WARM_UP` untimed ones."""
    for _ in range(WARM_UP):
        call()
    started = time.perf_counter()
    for _ in range(n):
        call()
    return _per_op_us(started, n)


def sqlite_commit_us(folder: Path, n: int) -> dict[str, float]:
    """µs per one-row durable commit, in WAL mode and with the rollback journal."""
    out: dict[str, float] = {}
    for journal in ("wal", "delete"):
        path = folder / f"floor-{journal}.db"
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute(f"PRAGMA journal_mode={journal}")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT)")

            def commit_one_row(conn: sqlite3.Connection = conn) -> None:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO t (payload) VALUES (?)", ("[1.0]",))
                conn.execute("COMMIT")

            out[f"sqlite_commit_{journal}_us"] = _timed_blocking(commit_one_row, n)
        finally:
            conn.close()
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    return out


async def _timed(call: Callable[[], Awaitable[object]], n: int) -> float:
    """`_timed_blocking` for a coroutine function."""
    for _ in range(WARM_UP):
        await call()
    started = time.perf_counter()
    for _ in range(n):
        await call()
    return _per_op_us(started, n)


async def postgres_commit_us(url: str, n: int) -> dict[str, float]:
    """µs per one-row autocommitted insert, and per bare round trip, through psycopg."""
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS aw_floor (id bigserial, payload text)")
        try:
            insert = await _timed(
                lambda: conn.execute("INSERT INTO aw_floor (payload) VALUES (%s)", ("[1.0]",)), n
            )
            select = await _timed(lambda: conn.execute("SELECT 1"), n)
        finally:
            await conn.execute("DROP TABLE aw_floor")
    return {"postgres_commit_us": insert, "postgres_round_trip_us": select}


async def redis_round_trip_us(url: str, n: int) -> dict[str, float]:
    """µs per ``PING`` through redis-py's asyncio client, then through its blocking one."""
    import redis
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    try:
        asyncio_us = await _timed(client.ping, n)
    finally:
        await client.aclose()
    blocking = redis.Redis.from_url(url)
    try:
        blocking_us = _timed_blocking(blocking.ping, n)
    finally:
        blocking.close()
    return {"redis_round_trip_us": asyncio_us, "redis_blocking_round_trip_us": blocking_us}


def measure(folder: Path, postgres_url: str, redis_url: str, n: int) -> dict[str, float]:
    """Every floor, in µs per operation."""
    figures = sqlite_commit_us(folder, n)
    figures |= asyncio.run(postgres_commit_us(postgres_url, n))
    figures |= asyncio.run(redis_round_trip_us(redis_url, n))
    return figures


def main() -> None:
    from .runs import POSTGRES, REDIS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = measure(Path(tmp), f"{POSTGRES}/test", REDIS, args.n)
    for name, value in figures.items():
        print(f"{name}: {value:,.1f} µs")


if __name__ == "__main__":
    main()
