"""Rows no afterward would write, put straight into a store's tables or keys.

`write_corrupt(url, case)` stores an ordinary task through the store, then corrupts it in
place with raw SQL or raw Redis commands, as an operator's hand, an old bug or an attacker
with access to the store would, and returns its id. `CASES` lists the cases each kind of
store can hold; `REFUSED` those its schema refuses (`write_corrupt` then raises the
driver's error). Used by the conformance suite (tests/stores/test_contract_corrupt_rows.py)
and the hostile-rows experiment (faults/experiments/hostile_rows/).

Each case is a row that is due at once, except ``run_at_text`` on SQLite: text sorts
after every number there, so that row never comes due (`NEVER_DUE`).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from typing import Any

from afterward.calls.ids import new_task_id
from afterward.jobs import NewJob
from afterward.options import StoredOptions
from afterward.stores import store_from_url

__all__ = [
    "CASES",
    "FUNCTION",
    "NEVER_DUE",
    "REFUSED",
    "corrupt",
    "kind_of",
    "write_corrupt",
]

FUNCTION = "faults.app:work"
"""The function a corrupt row names (it never runs: the row is failed before)."""

_COMMON = (
    "options_not_json",
    "options_not_object",
    "created_at_text",
    "run_at_text",
    "function_not_utf8",
    "payload_not_utf8",
    "state_bogus",
    "last_outcome_bogus",
)
CASES: dict[str, tuple[str, ...]] = {
    "sqlite": (*_COMMON, "priority_text", "max_attempts_text"),
    "postgres": ("options_not_object", "attempts_at_limit"),
    "redis": (*_COMMON, "attempts_text", "priority_huge"),
}
"""The corrupt rows each store can hold."""

REFUSED: dict[str, tuple[str, ...]] = {
    "sqlite": (),
    # a jsonb column, CHECK constraints
    "postgres": ("options_not_json", "state_bogus", "last_outcome_bogus"),
    "redis": (),
}
"""Cases a store's schema refuses to hold (`write_corrupt` raises the driver's error)."""

NEVER_DUE = {("sqlite", "run_at_text")}
"""(kind, case) of rows that never come due, so are never taken or failed."""

_SQL_CHANGES: dict[str, tuple[str, Any]] = {
    "options_not_json": ("options = ?", "{'max_attempts': 3"),
    "options_not_object": ("options = ?", "[1, 2, 3]"),
    "created_at_text": ("created_at = ?", "yesterday"),
    "run_at_text": ("run_at = ?", "soon"),
    "function_not_utf8": ("function = CAST(? AS TEXT)", b"faults.app:\xffwork"),
    "payload_not_utf8": ("payload = CAST(? AS TEXT)", b'{"args": ["\xff", 1]}'),
    "state_bogus": ("state = ?", "bogus"),
    "last_outcome_bogus": ("last_outcome = ?", "exploded"),
    "priority_text": ("priority = ?", "high"),
    "max_attempts_text": ("max_attempts = ?", "lots"),
}
_PG_CHANGES: dict[str, str] = {
    "options_not_object": "options = '[1, 2, 3]'::jsonb",
    "options_not_json": "options = '{''max_attempts'': 3'",
    "attempts_at_limit": "attempts = 2147483647",
    "state_bogus": "state = 'bogus'",
    "last_outcome_bogus": "last_outcome = 'exploded'",
}
_REDIS_CHANGES: dict[str, tuple[str, str | bytes]] = {
    "options_not_json": ("options", "{'max_attempts': 3"),
    "options_not_object": ("options", "[1, 2, 3]"),
    "created_at_text": ("created_at", "yesterday"),
    "run_at_text": ("run_at", "soon"),
    "function_not_utf8": ("function", b"faults.app:\xffwork"),
    "payload_not_utf8": ("payload", b'{"args": ["\xff", 1]}'),
    "last_outcome_bogus": ("last_outcome", "exploded"),
    "attempts_text": ("attempts", "none yet"),
    "priority_huge": ("priority", "9" * 5000),
}


def kind_of(url: str) -> str:
    """``sqlite``, ``postgres`` or ``redis``: the kind of store `url` names."""
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        return "sqlite"
    return "postgres" if scheme.startswith("postgres") else "redis"


async def write_corrupt(url: str, case: str, *, queue: str = "default") -> str:
    """Store a due task in `queue` of the store at `url`, corrupt it as `case` says (one
    of ``CASES[kind_of(url)]``, or of `REFUSED`), and return its id.

    :raises KeyError: `case` is not a case of this kind of store.
    """
    kind = kind_of(url)
    if case not in CASES[kind] + REFUSED[kind]:
        raise KeyError(f"no corrupt-row case {case!r} for {kind} (see CASES)")
    job_id = await _enqueue(url, queue)
    await corrupt(url, job_id, case, queue=queue)
    return job_id


async def corrupt(url: str, job_id: str, case: str, *, queue: str = "default") -> None:
    """Corrupt the stored task `job_id` (of `queue`) in place, as `case` says."""
    kind = kind_of(url)
    if kind == "sqlite":
        await asyncio.to_thread(_corrupt_sqlite, url, job_id, case)
    elif kind == "postgres":
        await _corrupt_postgres(url, job_id, case)
    else:
        await _corrupt_redis(url, job_id, case, queue)


async def _enqueue(url: str, queue: str) -> str:
    """An ordinary task, due now (a moment ago: it sorts before tasks stored after it)."""
    job = NewJob(
        id=new_task_id(),
        function=FUNCTION,
        payload=json.dumps({"args": ["corrupt", 1], "kwargs": {}}),
        queue=queue,
        max_attempts=3,
        options=StoredOptions({"max_attempts": 3}),
    )
    store = store_from_url(url)
    await store.open()
    try:
        (job_id,) = await store.enqueue([job], now=time.time() - 1.0)
    finally:
        await store.close()
    return job_id


def _corrupt_sqlite(url: str, job_id: str, case: str) -> None:
    from afterward.stores.sqlite.connection import path_from_url

    assignment, value = _SQL_CHANGES[case]
    conn = sqlite3.connect(path_from_url(url), timeout=30, isolation_level=None)
    try:
        conn.execute(f"UPDATE afterward_jobs SET {assignment} WHERE id = ?", (value, job_id))
    finally:
        conn.close()


async def _corrupt_postgres(url: str, job_id: str, case: str) -> None:
    import psycopg
    from psycopg import sql

    from afterward.stores.postgres.target import Target

    target = Target.from_url(url)
    async with await psycopg.AsyncConnection.connect(target.conninfo, autocommit=True) as conn:
        query = sql.SQL("UPDATE {}.afterward_jobs SET {} WHERE id = %s").format(
            sql.Identifier(target.schema), sql.SQL(_PG_CHANGES[case])
        )
        await conn.execute(query, (job_id,))


async def _corrupt_redis(url: str, job_id: str, case: str, queue: str) -> None:
    from redis.asyncio import Redis

    from afterward.stores.redis.target import parse_redis_url

    target = parse_redis_url(url)
    prefix = target.prefix
    client = Redis.from_url(target.client_url)
    try:
        key = f"{prefix}:job:{job_id}"
        if case == "state_bogus":
            # As a row stored that way would be indexed: in no ready or running set,
            # counted under its state.
            stored = await client.hget(key, "state")
            state = stored.decode() if isinstance(stored, bytes) else (stored or "")
            lane = f"0:{queue}"
            async with client.pipeline(transaction=True) as pipe:
                pipe.hset(key, "state", "bogus")
                pipe.zrem(f"{prefix}:ready:{lane}", job_id)
                pipe.zrem(f"{prefix}:running", job_id)
                pipe.hincrby(f"{prefix}:counts", f"{state}:{queue}", -1)
                pipe.hincrby(f"{prefix}:counts", f"bogus:{queue}", 1)
                await pipe.execute()
            if not await client.exists(f"{prefix}:ready:{lane}"):
                await client.zrem(f"{prefix}:lanes", lane)
            if int(await client.hget(f"{prefix}:counts", f"{state}:{queue}") or 0) <= 0:
                await client.hdel(f"{prefix}:counts", f"{state}:{queue}")
            return
        field, value = _REDIS_CHANGES[case]
        await client.hset(key, field, value)
    finally:
        await client.aclose()
