"""Huey, driven by `driver.py` (runs in Huey's own virtualenv). Redis or SQLite."""

from __future__ import annotations

import os
import sys

import ledger
from clients import SyncClient, tuned
from huey import RedisHuey, SqliteHuey

URL = os.environ.get("AW_BENCH_URL", "redis://127.0.0.1:6379/9")
huey = (
    SqliteHuey("aw-bench", filename=URL.removeprefix("sqlite:///"))
    if URL.startswith("sqlite")
    else RedisHuey("aw-bench", url=URL)
)


@huey.task()
def work(enqueued_at: float) -> None:
    """The no-op task."""
    ledger.record(enqueued_at)


class Client(SyncClient):
    def send(self, enqueued_at: float) -> None:
        work(enqueued_at)


def worker_commands(url: str, processes: int) -> list[list[str]]:
    """At the defaults, huey_consumer as is (one worker thread), with ``-k process -w N``
    for N processes. Tuned, one consumer per process, each of ``-k thread -w WORKERS``
    threads (huey's consumer runs threads or processes, never threads in processes)."""
    consumer = [sys.executable, "-m", "huey.bin.huey_consumer", "peer_huey.huey"]
    if (workers := tuned("workers")) is not None:
        return [[*consumer, "-k", "thread", "-w", workers]] * processes
    return [[*consumer, *(["-k", "process", "-w", str(processes)] if processes > 1 else [])]]
