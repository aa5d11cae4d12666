"""arq, driven by `driver.py` (runs in arq's own virtualenv). Redis only."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import ledger
from arq import create_pool
from arq.connections import RedisSettings
from clients import tuned

URL = os.environ.get("AW_BENCH_URL", "redis://127.0.0.1:6379/9")


async def work(ctx: dict[str, Any], enqueued_at: float) -> None:
    """The no-op task."""
    ledger.record(enqueued_at)


class WorkerSettings:
    """arq's documented worker settings, defaults otherwise (max_jobs=10); tuned, max_jobs."""

    functions = (work,)
    redis_settings = RedisSettings.from_dsn(URL)


if (MAX_JOBS := tuned("max_jobs")) is not None:
    WorkerSettings.max_jobs = int(MAX_JOBS)  # type: ignore[attr-defined]


class Client:
    def __init__(self, url: str) -> None:
        self.url = url

    async def start(self) -> None:
        self.pool = await create_pool(RedisSettings.from_dsn(self.url))

    async def enqueue(self, enqueued_at: float) -> None:
        await self.pool.enqueue_job("work", enqueued_at)

    async def enqueue_many(self, times: list[float]) -> None:
        # arq has no bulk call: concurrent enqueue_job calls on one pool
        await asyncio.gather(*(self.pool.enqueue_job("work", t) for t in times))

    async def close(self) -> None:
        await self.pool.aclose()


def worker_commands(url: str, processes: int) -> list[list[str]]:
    """One `arq` process per worker process (arq has no process supervisor)."""
    return [[sys.executable, "-m", "arq", "peer_arq.WorkerSettings"]] * processes
