"""Huey, driven by `driver.py` (runs in Huey's own virtualenv). Redis or SQLite."""

from __future__ import annotations

import os
import sys

import ledger
from clients import SyncClient
from huey import RedisHuey, SqliteHuey

URL = os.environ.get("AW_BENCH_URL", "redis://127.0.0.1:6379/9")
huey = (
    SqliteHuey("aw-bench", filename=URL.removeprefix("sqlite:///"), results=False)
    if URL.startswith("sqlite")
    else RedisHuey("aw-bench", url=URL, results=False)
)


@huey.task()
def work(enqueued_at: float) -> None:
    """The no-op task."""
    ledger.record(enqueued_at)


class Client(SyncClient):
    def send(self, enqueued_at: float) -> None:
        work(enqueued_at)


def worker_commands(url: str, processes: int) -> list[list[str]]:
    """huey_consumer with 8 worker threads per process (processes: -k process)."""
    if processes == 1:
        args = ["-k", "thread", "-w", "8"]
    else:
        args = ["-k", "process", "-w", str(processes)]
    return [[sys.executable, "-m", "huey.bin.huey_consumer", "peer_huey.huey", *args]]
