"""RQ, driven by `driver.py` (runs in RQ's own virtualenv). Redis only."""

from __future__ import annotations

import os
import sys

import ledger
from clients import tuned
from redis import Redis
from rq import Queue

URL = os.environ.get("AW_BENCH_URL", "redis://127.0.0.1:6379/9")


def work(enqueued_at: float) -> None:
    """The no-op task."""
    ledger.record(enqueued_at)


class Client:
    def __init__(self, url: str) -> None:
        self.queue = Queue("bench", connection=Redis.from_url(url))

    async def start(self) -> None:
        pass

    async def enqueue(self, enqueued_at: float) -> None:
        self.enqueue_blocking(enqueued_at)

    def enqueue_blocking(self, enqueued_at: float) -> None:
        """RQ's client is synchronous: an endpoint calls it from a thread."""
        self.queue.enqueue(work, enqueued_at)

    async def enqueue_many(self, times: list[float]) -> None:
        self.queue.enqueue_many([Queue.prepare_data(work, (t,)) for t in times])

    async def close(self) -> None:
        pass


def worker_commands(url: str, processes: int) -> list[list[str]]:
    """`rq worker`, one per process: its default worker forks a work horse per job; tuned,
    ``--worker-class`` (`rq.worker.SimpleWorker` runs the job in the worker itself)."""
    worker_class = tuned("worker_class")
    command = [sys.executable, "-m", "rq.cli", "worker", "bench", "--url", url, "-q"]
    return [[*command, *(["--worker-class", worker_class] if worker_class else [])]] * processes
