"""The store server goes away and comes back mid-run: workers resume, nothing is lost.

PostgreSQL: the local cluster is restarted in immediate mode (a crash, as far as clients
see). Redis: a private redis-server with AOF `appendfsync always` on a free port is killed
with SIGKILL and started again. Prints time to resume (pytest -s).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from servers import POSTGRES_URL, drop_store_data, require_server

from afterward import Afterward, JobState

from . import crash_app
from .procs import free_port, kill, start_worker, stop, wait_until

pytestmark = pytest.mark.slow

TARGET = "integration.crash_app:app"
TASKS = 3000


def _ledger(folder: Path) -> list[str]:
    path = folder / "ledger.txt"
    return path.read_text().split() if path.exists() else []


def _succeeded(url: str) -> int:
    async def count() -> int:
        afterward = Afterward(url=url, execution="workers")
        try:
            await afterward.open()
            counts = await afterward.store.counts()
        except Exception:  # the server may still be starting
            return -1
        finally:
            await afterward.aclose()
        return counts.get(("default", JobState.SUCCEEDED), 0)

    return asyncio.run(count())


async def _enqueue(url: str, total: int) -> None:
    afterward = Afterward(url=url, execution="workers")
    for n in range(total):
        await afterward.enqueue(crash_app.tick, n)
    await afterward.aclose()


def _run_through_restart(url: str, folder: Path, restart: Callable[[], None]) -> None:
    asyncio.run(_enqueue(url, TASKS))
    workers = [start_worker(folder, TARGET, url, "--concurrency", "4") for _ in range(2)]
    try:
        wait_until(lambda: len(_ledger(folder)) >= 50, 60, "progress before the restart")
        restart()
        back_at = time.monotonic()
        done_before = len(_ledger(folder))
        assert done_before < TASKS, "all tasks finished before the restart: enqueue more"
        resumed = wait_until(lambda: len(_ledger(folder)) > done_before, 60, "resumption")
        wait_until(lambda: _succeeded(url) == TASKS, 180, "all tasks to succeed")
        codes = [w.poll() for w in workers]
        assert codes == [None] * len(workers), f"a worker exited instead of resuming: {codes}"
    finally:
        for worker in workers:
            stop(worker)
    ran = _ledger(folder)
    lost = TASKS - len(set(ran))
    print(
        f"\n{url.split(':')[0]} restart: workers resumed {resumed:.2f} s after the server was "
        f"back ({time.monotonic() - back_at:.1f} s to finish); lost {lost}, "
        f"ran twice {len(ran) - len(set(ran))}"
    )
    assert lost == 0


@pytest.mark.postgres
def test_postgres_restart_mid_run_loses_nothing(tmp_path: Path) -> None:
    require_server("postgres")
    url = f"{POSTGRES_URL}{'&' if '?' in POSTGRES_URL else '?'}schema=aw_restart_{free_port()}"

    def restart() -> None:
        subprocess.run(
            [
                "pg_ctlcluster",
                "--skip-systemctl-redirect",
                "15",
                "main",
                "restart",
                "-m",
                "immediate",
            ],
            check=True,
        )

    try:
        _run_through_restart(url, tmp_path, restart)
    finally:
        drop_store_data(url)


class PrivateRedis:
    """A redis-server on a free port, writing an AOF with appendfsync always."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--dir",
                str(self.folder),
                "--logfile",
                str(self.folder / "redis.log"),
            ],
        )
        import redis

        def up() -> bool:
            try:
                return bool(redis.Redis(port=self.port).ping())
            except redis.ConnectionError:
                return False

        wait_until(up, 20, "the private redis-server")

    def crash(self) -> None:
        assert self.proc is not None
        kill(self.proc)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    require_server("redis")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()


@pytest.mark.redis
def test_redis_kill_with_aof_always_mid_run_loses_nothing(
    private_redis: PrivateRedis, tmp_path: Path
) -> None:
    url = f"redis://127.0.0.1:{private_redis.port}/0?prefix=aw_restart"

    def restart() -> None:
        private_redis.crash()
        time.sleep(1.0)
        private_redis.start()

    _run_through_restart(url, tmp_path, restart)


@pytest.mark.redis
def test_request_fails_clearly_while_the_store_is_down(
    private_redis: PrivateRedis, workdir: Path
) -> None:
    # Given an app on a Redis store that has gone away
    from .apps import chains

    app = chains()
    url = f"redis://127.0.0.1:{private_redis.port}/0?prefix=aw_down"
    Afterward(url=url, execution="workers").install(app)
    client = TestClient(app, raise_server_exceptions=False)
    assert client.post("/chain/1").status_code == 200
    private_redis.crash()
    # When a request adds tasks, Then it fails instead of answering 200 with tasks lost
    assert client.post("/chain/2").status_code == 500
    # And once the server is back, requests succeed again without a restart
    private_redis.start()
    wait_until(lambda: client.post("/chain/3").status_code == 200, 30, "recovery")
    asyncio.run(Afterward.of(app).aclose())
