"""SAQ, driven by `driver.py` (runs in SAQ's own virtualenv). Redis here."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import ledger
from clients import tuned
from saq import Queue

URL = os.environ.get("AW_BENCH_URL", "redis://127.0.0.1:6379/9")


async def work(ctx: dict[str, Any], *, enqueued_at: float) -> None:
    """The no-op task."""
    ledger.record(enqueued_at)


queue = Queue.from_url(URL)
settings: dict[str, Any] = {"queue": queue, "functions": [work]}
"""SAQ's documented worker settings: concurrency 10 (its default) or, tuned, ``concurrency``."""
if (CONCURRENCY := tuned("concurrency")) is not None:
    settings["concurrency"] = int(CONCURRENCY)


class Client:
    def __init__(self, url: str) -> None:
        self.queue = Queue.from_url(url)

    async def start(self) -> None:
        await self.queue.connect()

    async def enqueue(self, enqueued_at: float) -> None:
        await self.queue.enqueue("work", enqueued_at=enqueued_at)

    async def enqueue_many(self, times: list[float]) -> None:
        await asyncio.gather(*(self.queue.enqueue("work", enqueued_at=t) for t in times))

    async def close(self) -> None:
        await self.queue.disconnect()


def worker_commands(url: str, processes: int) -> list[list[str]]:
    """SAQ's own CLI, with its --workers process count."""
    return [[sys.executable, "-m", "saq", "peer_saq.settings", "--workers", str(processes)]]
