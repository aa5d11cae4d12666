"""taskiq with taskiq-redis, driven by `driver.py` (its own virtualenv). Redis only."""

from __future__ import annotations

import asyncio
import os
import sys

import ledger
from clients import tuned
from taskiq_redis import ListQueueBroker, RedisStreamBroker

URL = os.environ.get("AW_BENCH_URL", "redis://127.0.0.1:6379/9")
BROKERS = {"RedisStreamBroker": RedisStreamBroker, "ListQueueBroker": ListQueueBroker}
broker = BROKERS[tuned("broker") or "RedisStreamBroker"](URL)
"""taskiq-redis's README broker, RedisStreamBroker (a stream with acknowledgements), or,
tuned, ``broker``: its ListQueueBroker ("if you don't want acknowledges")."""


@broker.task
async def work(enqueued_at: float) -> None:
    """The no-op task."""
    ledger.record(enqueued_at)


class Client:
    def __init__(self, url: str) -> None:
        self.url = url

    async def start(self) -> None:
        await broker.startup()

    async def enqueue(self, enqueued_at: float) -> None:
        await work.kiq(enqueued_at)

    async def enqueue_many(self, times: list[float]) -> None:
        await asyncio.gather(*(work.kiq(t) for t in times))

    async def close(self) -> None:
        await broker.shutdown()


def worker_commands(url: str, processes: int) -> list[list[str]]:
    """taskiq's worker CLI with `processes` worker processes (its default is 2)."""
    return [
        [
            sys.executable,
            "-m",
            "taskiq",
            "worker",
            "peer_taskiq:broker",
            "--workers",
            str(processes),
        ]
    ]
