"""Fixtures for apps under TestClient: each app's Afterward is closed after the test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from afterward import Afterward

from . import apps


@pytest.fixture
def make_client(workdir: Path) -> Iterator[Callable[..., TestClient]]:
    """Build a TestClient for an app; its Afterward (if any was created) is closed after."""
    made: list[FastAPI] = []

    def make(app: FastAPI, **kwargs: object) -> TestClient:
        made.append(app)
        return TestClient(app, **kwargs)  # type: ignore[arg-type]

    apps.EVENTS.clear()
    yield make
    for app in made:
        found = getattr(app.state, "afterward", None)
        if isinstance(found, Afterward):
            asyncio.run(found.aclose())
