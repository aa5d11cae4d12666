"""Celery, driven by `driver.py` (runs in Celery's own virtualenv). Redis broker here."""

from __future__ import annotations

import os
import sys

import ledger
from celery import Celery
from clients import SyncClient, tuned

URL = os.environ.get("AW_BENCH_URL", "redis://127.0.0.1:6379/9")
app = Celery("peer_celery", broker=URL)
if (PREFETCH := tuned("prefetch_multiplier")) is not None:
    app.conf.worker_prefetch_multiplier = int(PREFETCH)  # Celery's default: 4


@app.task
def work(enqueued_at: float) -> None:
    """The no-op task."""
    ledger.record(enqueued_at)


class Client(SyncClient):
    def send(self, enqueued_at: float) -> None:
        work.delay(enqueued_at)


def worker_commands(url: str, processes: int) -> list[list[str]]:
    """`celery worker` with its prefork pool of `processes` processes (Celery's default is
    one per core); gossip and mingle, the chatter between a cluster's workers, are off: there
    is one worker."""
    return [
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "peer_celery",
            "worker",
            "-c",
            str(processes),
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
        ]
    ]
