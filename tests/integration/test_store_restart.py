"""The store goes away under a web app: requests fail clearly, then recover by themselves.

(Workers through a store restart mid-run: the fault suite's experiment 3,
`faults/experiments/store_restart.py`, run in CI by tests/faults/.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from servers import require_server

from afterward import Afterward
from faults.servers import PrivateRedis

from .apps import chains
from .procs import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    require_server("redis")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.mark.redis
def test_request_fails_clearly_while_the_store_is_down(
    private_redis: PrivateRedis, workdir: Path
) -> None:
    # Given an app on a Redis store that has gone away
    app = chains()
    Afterward(url=f"{private_redis.url}?prefix=aw_down", execution="workers").install(app)
    client = TestClient(app, raise_server_exceptions=False)
    assert client.post("/chain/1").status_code == 200
    private_redis.crash()
    # When a request adds tasks, Then it fails instead of answering 200 with tasks lost
    assert client.post("/chain/2").status_code == 500
    # And once the server is back, requests succeed again without a restart
    private_redis.start()
    wait_until(lambda: client.post("/chain/3").status_code == 200, 30, "recovery")
    asyncio.run(Afterward.of(app).aclose())
