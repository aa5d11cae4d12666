"""The embedded worker: a runner on its own thread and event loop inside the web process.

It retries failed tasks when their backoff is over, runs tasks whose request could not run
them, renews the leases of chains the web process is running, and takes back work left by
crashed processes. It never touches the web server's event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from .runner import Runner

__all__ = ["EmbeddedWorker"]

log = logging.getLogger("afterward.worker")


class EmbeddedWorker:
    """Owns one daemon thread running `runner.run()` until `stop()`."""

    def __init__(self, runner: Runner, grace_period: float) -> None:
        self._runner = runner
        self._grace_period = grace_period
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="afterward-embedded", daemon=True)

    def start(self) -> None:
        """Start the thread and return once its loop runs."""
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            await self._runner.run(self._stop)
        except Exception:
            log.exception("the embedded worker stopped on an error")

    def stop(self) -> None:
        """Ask the runner to wind down and wait for it (grace period plus a margin)."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(self._grace_period + 5.0)
