"""A real SQLite store and extra runners on it, for the runner's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from afterward import Afterward, RetryPolicy
from afterward.worker.executor import Executor
from afterward.worker.runner import Runner

from . import apps


@pytest.fixture
async def afterward(tmp_path: Path) -> AsyncIterator[Afterward]:
    instance = Afterward(
        url=f"sqlite:///{tmp_path / 'tasks.db'}",
        execution="workers",
        retry=RetryPolicy(max_attempts=3, backoff_base=0.0, backoff_max=0.0),
    )
    await instance.open()
    apps.FLAKY_CALLS.clear()
    yield instance
    await instance.aclose()


def other_runner(afterward: Afterward, **settings: Any) -> Runner:
    from afterward.worker.identity import new_worker_id

    return Runner(
        store=afterward.store,
        registry=afterward.registry,
        settings=replace(afterward.settings, **settings),
        worker_id=new_worker_id(),
        executor=Executor(4),
    )
