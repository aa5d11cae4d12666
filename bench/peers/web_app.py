"""The lesson's ``/tasks`` endpoint with a peer enqueueing its two tasks, for `bench.web`.

Runs under uvicorn in the peer's own virtualenv (FastAPI and uvicorn at afterward's
versions are added there). ``AW_BENCH_PEER`` names the peer module (``peer_<name>.py``
beside this file) and ``AW_BENCH_URL`` its store. The endpoint enqueues two tasks through
the peer's benchmark `Client`, the way that peer's users write it: awaited in an
``async def`` endpoint, or, for a client that blocks (RQ), in a ``def`` endpoint, which
FastAPI runs in its thread pool.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

peer = importlib.import_module(f"peer_{os.environ['AW_BENCH_PEER']}")
client = peer.Client(os.environ["AW_BENCH_URL"])


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the peer's client once, as an app would at start-up."""
    await client.start()
    try:
        yield
    finally:
        await client.close()


app = FastAPI(lifespan=lifespan)

if hasattr(client, "enqueue_blocking"):

    @app.post("/tasks")
    def create_task_blocking(title: str) -> dict[str, str]:
        """A blocking client's two enqueues, in FastAPI's thread pool."""
        client.enqueue_blocking(time.time())
        client.enqueue_blocking(time.time())
        return {"status": "created", "title": title}

else:

    @app.post("/tasks")
    async def create_task(title: str) -> dict[str, str]:
        """Two enqueues, each awaited before the response (acknowledged by the store)."""
        await client.enqueue(time.time())
        await client.enqueue(time.time())
        return {"status": "created", "title": title}
