"""Procrastinate, driven by `driver.py` (its own virtualenv). PostgreSQL only."""

from __future__ import annotations

import os
import sys

import ledger
import procrastinate
from clients import tuned

URL = os.environ.get("AW_BENCH_URL", "postgresql://127.0.0.1:5432/test")
app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=URL))


@app.task(name="work")
async def work(enqueued_at: float) -> None:
    """The no-op task."""
    ledger.record(enqueued_at)


async def prepare(url: str) -> None:
    """Create Procrastinate's schema in the (fresh) database."""
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


class Client:
    def __init__(self, url: str) -> None:
        self.url = url

    async def start(self) -> None:
        await app.open_async()

    async def enqueue(self, enqueued_at: float) -> None:
        await work.defer_async(enqueued_at=enqueued_at)

    async def enqueue_many(self, times: list[float]) -> None:
        await work.batch_defer_async(*({"enqueued_at": t} for t in times))

    async def close(self) -> None:
        await app.close_async()


def worker_commands(url: str, processes: int) -> list[list[str]]:
    """`procrastinate worker`, one per process: one job at a time (its default) or, tuned,
    ``--concurrency``."""
    concurrency = tuned("concurrency")
    command = [sys.executable, "-m", "procrastinate", "--app", "peer_procrastinate.app", "worker"]
    return [[*command, *(["--concurrency", concurrency] if concurrency else [])]] * processes
