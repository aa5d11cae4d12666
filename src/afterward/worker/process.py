"""One worker process: a runner on this process's event loop until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from dataclasses import replace

from ..app import Afterward
from ..errors import StoreError
from .executor import Executor
from .identity import new_worker_id
from .runner import Runner

__all__ = ["serve"]

log = logging.getLogger("afterward.worker")

_OPEN_BACKOFF = 0.25
_OPEN_BACKOFF_MAX = 5.0


async def serve(
    afterward: Afterward,
    *,
    queues: Sequence[str] | None = None,
    concurrency: int | None = None,
    grace_period: float | None = None,
) -> None:
    """Run tasks until SIGTERM/SIGINT, then stop gracefully (see `Runner.run`)."""
    settings = replace(
        afterward.settings,
        concurrency=concurrency or afterward.settings.concurrency,
        grace_period=afterward.settings.grace_period if grace_period is None else grace_period,
    )
    executor = Executor(settings.concurrency)
    runner = Runner(
        store=afterward.store,
        registry=afterward.registry,
        settings=settings,
        worker_id=new_worker_id(),
        executor=executor,
        queues=queues,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if not await _open_when_reachable(afterward, stop):
        return
    log.info(
        "worker %s ready: store %s, queues %s, concurrency %d",
        runner.worker_id,
        afterward.store.url,
        ",".join(queues or ["*"]),
        settings.concurrency,
    )
    try:
        await runner.run(stop)
    finally:
        executor.shutdown()
        await afterward.aclose()
    log.info("worker %s stopped", runner.worker_id)


async def _open_when_reachable(afterward: Afterward, stop: asyncio.Event) -> bool:
    """Open the store, retrying with backoff while it is unreachable (a worker may start
    before its store, or during a store restart). False if told to stop first."""
    delay = _OPEN_BACKOFF
    while not stop.is_set():
        try:
            await afterward.open()
            return True
        except StoreError as exc:
            if delay == _OPEN_BACKOFF:
                log.warning("store unavailable (%s); retrying until it answers", exc)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                delay = min(delay * 2, _OPEN_BACKOFF_MAX)
    return False
