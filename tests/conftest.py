"""Shared fixtures. `store` is the conformance fixture: every store the suite knows, by id.

PostgreSQL and Redis tests talk to real servers: `AFTERWARD_TEST_POSTGRES_URL` and
`AFTERWARD_TEST_REDIS_URL` (default: the local servers). Each test gets its own schema or
key prefix. Where a server cannot be reached its tests are skipped with the reason, except
in CI (`CI` set), where that is a failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from servers import drop_store_data, postgres_url, redis_url, sqlite_url

from afterward.stores import Store, store_from_url


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
