"""One worker process: a runner on this process's event loop until SIGTERM or SIGINT, or
until a plain task overruns its time limit and holds its thread for good: then the process
retires (exit code `EXIT_RETIRED`) so that its supervisor starts a fresh one.

Either way, processes its tasks started and left running (a child a task did not wait
for, or one whose task was cancelled) are stopped before the process exits: SIGTERM, then
SIGKILL after a few seconds (`stop_descendants`)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import replace

from ..app import Afterward
from ..errors import StoreError
from .descendants import stop_descendants
from .executor import Executor
from .identity import new_worker_id
from .runner import Runner

__all__ = ["EXIT_RETIRED", "READY_FD_VARIABLE", "serve"]

log = logging.getLogger("afterward.worker")

EXIT_RETIRED = 75
"""Exit code of a worker that stopped on its own because a task's thread is stuck past its
time limit (EX_TEMPFAIL): start another in its place."""

READY_FD_VARIABLE = "AFTERWARD_READY_FD"
"""Set by the supervisor: the pipe on which a worker process says it is ready (store open),
so that the supervisor tells a process that fails to boot from one that crashed later."""

_OPEN_BACKOFF = 0.25
_OPEN_BACKOFF_MAX = 5.0


async def serve(
    afterward: Afterward,
    *,
    queues: Sequence[str] | None = None,
    concurrency: int | None = None,
    grace_period: float | None = None,
) -> int:
    """Run tasks until SIGTERM/SIGINT, then stop gracefully (see `Runner.run`) and stop
    the processes tasks left behind; return the exit code: 0, or `EXIT_RETIRED` when the
    runner retired because a thread is stuck."""
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
        retire_when_stuck=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if not await _open_when_reachable(afterward, stop):
        return 0
    _report_ready()
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
        stop_descendants()  # blocks for at most a few seconds; nothing else runs now
        await afterward.aclose()
    if runner.retired is not None:
        log.error(
            "worker %s retired (exit code %d): %s", runner.worker_id, EXIT_RETIRED, runner.retired
        )
        return EXIT_RETIRED
    log.info("worker %s stopped", runner.worker_id)
    return 0


def _report_ready() -> None:
    """Tell the supervisor, if there is one, that this process is ready: one byte on the
    pipe it gave (`READY_FD_VARIABLE`), then close it (the tasks never inherit it)."""
    fd = os.environ.pop(READY_FD_VARIABLE, None)
    if fd is None:
        return
    try:
        os.write(int(fd), b"r")
        os.close(int(fd))
    except (OSError, ValueError) as exc:
        log.warning("could not tell the supervisor this worker is ready (%s)", exc)


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
