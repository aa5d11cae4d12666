"""Shared fixtures. `store` is the conformance fixture: every store the suite knows, by id.

PostgreSQL and Redis tests talk to real servers: `AFTERWARD_TEST_POSTGRES_URL` and
`AFTERWARD_TEST_REDIS_URL` (default: the local servers). Each test gets its own schema or
key prefix. Where a server cannot be reached its tests are skipped with the reason, except
in CI (`CI` set), where that is a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from functools import cache
from pathlib import Path

import pytest

from afterward.stores import Store, store_from_url

POSTGRES_URL = os.environ.get("AFTERWARD_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/test")
REDIS_URL = os.environ.get("AFTERWARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


class FakeClock:
    """A clock the test moves by hand: `clock()` returns the time, `advance()` moves it."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


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


STORE_PARAMS = [
    pytest.param(sqlite_url, id="sqlite"),
    pytest.param(postgres_url, id="postgres", marks=pytest.mark.postgres),
    pytest.param(redis_url, id="redis", marks=pytest.mark.redis),
]
"""One entry per store: a function from a temporary folder to a fresh store URL."""


@pytest.fixture(params=STORE_PARAMS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    make_url: Callable[[Path], str] = request.param
    url = make_url(tmp_path)
    yield url
    drop_store_data(url)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = store_from_url(store_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run the test in an empty directory (zero-config apps put afterward.db there)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AFTERWARD_URL", raising=False)
    yield tmp_path


