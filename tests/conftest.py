"""Shared fixtures. `store` is the conformance fixture: every store the suite knows, by id."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

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


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


STORE_PARAMS = [pytest.param(_sqlite_url, id="sqlite")]
"""One entry per store; PostgreSQL and Redis join here."""


@pytest.fixture(params=STORE_PARAMS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    make_url = request.param
    return str(make_url(tmp_path))


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
