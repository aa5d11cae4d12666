"""`afterward worker app.main:app`: run tasks in separate processes."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from typing import Annotated

import typer

from ..errors import AfterwardError
from ..worker.loading import load_afterward
from ..worker.process import serve
from ..worker.supervisor import Supervisor
from ._common import stderr

__all__ = ["worker"]


def worker(
    target: Annotated[str, typer.Argument(help="The app, as given to uvicorn: module:app.")],
    processes: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Tasks run at once per process.")
    ] = None,
    queue: Annotated[
        list[str] | None, typer.Option(help="Only these queues (repeat); all by default.")
    ] = None,
    grace_period: Annotated[
        float | None, typer.Option(help="Seconds running tasks get to finish on SIGTERM.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Run an app's tasks in worker processes until SIGTERM or Ctrl-C."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if processes > 1:
        command = [sys.executable, "-m", "afterward", *_child_arguments(sys.argv[2:])]
        grace = 30.0 if grace_period is None else grace_period
        raise typer.Exit(Supervisor(command, processes=processes, grace_period=grace).run())
    try:
        afterward = load_afterward(target)
        asyncio.run(
            serve(afterward, queues=queue, concurrency=concurrency, grace_period=grace_period)
        )
    except AfterwardError as exc:
        stderr().print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    if threading.active_count() > 1:  # a timed-out plain function still holds its thread
        logging.shutdown()
        os._exit(0)


def _child_arguments(argv: list[str]) -> list[str]:
    """This command's arguments for one child process (same options, one process)."""
    out, skip = ["worker"], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--processes":
            skip = True
        elif not arg.startswith("--processes="):
            out.append(arg)
    return [*out, "--processes", "1"]
