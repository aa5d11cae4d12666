"""Fixtures of the PostgreSQL and Redis stores' own tests, each on a fresh schema or
prefix; the conformance suite's `store` fixture is in tests/conftest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from servers import drop_store_data, postgres_url, redis_url

from afterward.stores import Store, store_from_url

from ._postgres import schema_of


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh schema's URL, naming its connections (application_name) after the schema."""
    url = postgres_url(tmp_path)
    yield f"{url}&application_name={schema_of(url)}"
    drop_store_data(url)


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[Store]:
    store = store_from_url(pg_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def rs_url(tmp_path: Path) -> Iterator[str]:
    """A fresh prefix's Redis URL."""
    made = redis_url(tmp_path)
    yield made
    drop_store_data(made)


@pytest.fixture
async def rs(rs_url: str) -> AsyncIterator[Store]:
    store = store_from_url(rs_url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
