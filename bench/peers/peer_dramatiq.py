"""Dramatiq, driven by `driver.py` (runs in Dramatiq's own virtualenv). Redis here."""

from __future__ import annotations

import os
import sys

import dramatiq
import ledger
from clients import SyncClient, tuned
from dramatiq.brokers.redis import RedisBroker

URL = os.environ.get("AW_BENCH_URL", "redis://127.0.0.1:6379/9")
broker = RedisBroker(url=URL)
dramatiq.set_broker(broker)


@dramatiq.actor
def work(enqueued_at: float) -> None:
    """The no-op task."""
    ledger.record(enqueued_at)


class Client(SyncClient):
    def send(self, enqueued_at: float) -> None:
        work.send(enqueued_at)

    async def close(self) -> None:
        broker.close()


def worker_commands(url: str, processes: int) -> list[list[str]]:
    """Dramatiq's CLI with `processes` processes (its default is one per core), each of 8
    threads (its default) or, tuned, of ``--threads``."""
    threads = tuned("threads")
    command = [sys.executable, "-m", "dramatiq", "peer_dramatiq", "--processes", str(processes)]
    return [[*command, *(["--threads", threads] if threads else [])]]
