"""afterward, driven by `driver.py` (runs in afterward's own virtualenv)."""

from __future__ import annotations

import os
import sys

import ledger
from clients import tuned

from afterward import Afterward, task

afterward = Afterward(url=os.environ.get("AW_BENCH_URL"), execution="workers")


@task
async def work(enqueued_at: float) -> None:
    """The benchmark's no-op task (async: runs on the worker's event loop)."""
    ledger.record(enqueued_at)


class Client:
    """One producer."""

    def __init__(self, url: str) -> None:
        self.afterward = Afterward(url=url, execution="workers", tasks=[work])

    async def start(self) -> None:
        await self.afterward.open()

    async def enqueue(self, enqueued_at: float) -> None:
        await self.afterward.enqueue(work, enqueued_at)

    async def enqueue_many(self, times: list[float]) -> None:
        await self.afterward.enqueue_many(work, [(t,) for t in times])

    async def close(self) -> None:
        await self.afterward.aclose()


def worker_commands(url: str, processes: int) -> list[list[str]]:
    """The worker, as a user starts it (its supervisor runs `processes` processes); tuned,
    with ``--concurrency`` (tasks at once per process, 8 by default)."""
    concurrency = tuned("concurrency")
    return [
        [
            sys.executable,
            "-m",
            "afterward",
            "worker",
            "peer_afterward:afterward",
            "--processes",
            str(processes),
            *(["--concurrency", concurrency] if concurrency else []),
            "--log-level",
            "WARNING",
        ]
    ]
