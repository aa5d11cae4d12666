"""PgQueuer, driven by `driver.py` (its own virtualenv). PostgreSQL only."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import ledger
from clients import tuned
from pgqueuer import AsyncpgDriver, PgQueuer, Queries
from pgqueuer.models import Job

URL = os.environ.get("AW_BENCH_URL", "postgresql://127.0.0.1:5432/test")


@asynccontextmanager
async def main() -> AsyncIterator[PgQueuer]:
    """The worker's factory, as PgQueuer's docs show it (an async context manager)."""
    connection = await asyncpg.connect(URL)
    pgq = PgQueuer(AsyncpgDriver(connection))

    @pgq.entrypoint("work")
    async def work(job: Job) -> None:
        (enqueued_at,) = struct.unpack("d", job.payload or b"")
        ledger.record(enqueued_at)

    try:
        yield pgq
    finally:
        await connection.close()


async def prepare(url: str) -> None:
    """Install PgQueuer's schema in the (fresh) database."""
    subprocess.run(
        [sys.executable, "-m", "pgqueuer", "--pg-dsn", url, "install"],
        check=True,
        stdout=subprocess.DEVNULL,
    )


class Client:
    def __init__(self, url: str) -> None:
        self.url = url

    async def start(self) -> None:
        self.connection = await asyncpg.connect(self.url)
        self.queries = Queries(AsyncpgDriver(self.connection))

    async def enqueue(self, enqueued_at: float) -> None:
        await self.queries.enqueue("work", struct.pack("d", enqueued_at))

    async def enqueue_many(self, times: list[float]) -> None:
        payloads: list[bytes | None] = [struct.pack("d", t) for t in times]
        await self.queries.enqueue(["work"] * len(times), payloads, [0] * len(times))

    async def close(self) -> None:
        await self.connection.close()


def worker_commands(url: str, processes: int) -> list[list[str]]:
    """PgQueuer's own supervisor (`pgqueuer.run`, what `pgq run` calls) with its defaults
    (batch size 10) or, tuned, ``batch_size`` (`pgq run --batch-size`), one per process.
    Called from Python because the `pgq run` command of pgqueuer 1.6.0 fails at start here
    ('str' object has no attribute 'name', in its logging set-up under typer 0.29)."""
    batch = tuned("batch_size")
    options = f", batch_size={int(batch)}" if batch else ""
    code = (
        "import asyncio, pgqueuer, peer_pgqueuer; "
        f"asyncio.run(pgqueuer.run(peer_pgqueuer.main{options}))"
    )
    return [[sys.executable, "-c", code]] * processes
