"""`Afterward.enqueue_many`: many independent tasks of one function in one transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from afterward import Afterward, JobState, TaskRefused
from afterward.testing import drain

from . import apps


@pytest.fixture
def afterward(tmp_path: Path) -> Afterward:
    return Afterward(url=f"sqlite:///{tmp_path / 'bulk.db'}", execution="workers")


async def test_each_item_becomes_one_independent_task(afterward: Afterward) -> None:
    # Given calls given as positional tuples and as keyword mappings
    apps.EVENTS.clear()
    calls: list[Sequence[Any] | Mapping[str, Any]] = [("a", "1"), ["b", "2"], {"event": "ignored"}]
    # When they are enqueued in bulk (the mapping one refused: record takes *event only)
    with pytest.raises(TaskRefused):
        await afterward.enqueue_many(apps.record, calls)
    # Then nothing of that batch was stored
    await afterward.open()
    assert await afterward.store.counts() == {}
    # And a valid batch stores one queued task per item, none chained, in order
    ids = await afterward.enqueue_many(apps.record, [("a", "1"), ["b", "2"], ("c",)])
    jobs = [await afterward.get(i) for i in ids]
    assert [j.state for j in jobs] == [JobState.QUEUED] * 3
    assert all(j.chain_id is None and j.prev_id is None for j in jobs)
    # And they run with their own arguments
    assert await drain(afterward) == []
    assert sorted(apps.EVENTS) == [("a", "1"), ("b", "2"), ("c",)]
    await afterward.aclose()


async def test_keyword_items_and_an_empty_batch(afterward: Afterward) -> None:
    # Given keyword calls of a function with named parameters
    apps.EVENTS.clear()
    ids = await afterward.enqueue_many(apps.write_notification, [{"email": "ada@example.com"}])
    # Then they are stored, and an empty batch stores nothing and returns no ids
    assert len(ids) == 1
    assert await afterward.enqueue_many(apps.record, []) == []
    assert sum((await afterward.store.counts()).values()) == 1
    await afterward.aclose()
