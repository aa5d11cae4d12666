"""The test servers: where they are, whether they can be used, and cleaning up after a test.

PostgreSQL and Redis tests talk to real servers: `AFTERWARD_TEST_POSTGRES_URL` and
`AFTERWARD_TEST_REDIS_URL` (default: the local servers). Each test gets its own schema or
key prefix. Where a server cannot be reached its tests are skipped with the reason, except
in CI (`CI` set), where that is a failure.
"""

from __future__ import annotations

import os
import uuid
from functools import cache
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get("AFTERWARD_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
REDIS_URL = os.environ.get("AFTERWARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@cache
def _unreachable(kind: str) -> str | None:
    """Why the test server of `kind` cannot be used, or None if it can."""
    try:
        if kind == "postgres":
            import psycopg

            psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
        else:
            import redis

            redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as exc:
        return f"{kind} test server unreachable ({exc})"
    return None


def require_server(kind: str) -> None:
    """Skip (on a laptop) or fail (in CI) when the `kind` server is unreachable."""
    reason = _unreachable(kind)
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI requires it (set AFTERWARD_TEST_{kind.upper()}_URL)")
    pytest.skip(reason)


def _with_query(url: str, name: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{name}={value}"


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def postgres_url(tmp_path: Path) -> str:
    require_server("postgres")
    return _with_query(POSTGRES_URL, "schema", f"aw_test_{uuid.uuid4().hex[:10]}")


def redis_url(tmp_path: Path) -> str:
    require_server("redis")
    return _with_query(REDIS_URL, "prefix", f"aw_test_{uuid.uuid4().hex[:10]}")


def drop_store_data(url: str) -> None:
    """Remove what a test's store created on a shared server (its schema or keys)."""
    if url.startswith("postgres"):
        import psycopg

        base, _, query = url.partition("?")
        schema = dict(p.split("=", 1) for p in query.split("&"))["schema"]
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    elif url.startswith("redis"):
        import redis

        base, _, query = url.partition("?")
        prefix = dict(p.split("=", 1) for p in query.split("&"))["prefix"]
        client = redis.Redis.from_url(base)
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
