"""`afterward worker app.main:app`: run tasks in separate processes.

A worker process retires (exits with code 75, `EXIT_RETIRED`) when a plain `def` task
overruns its time limit: Python cannot stop the thread running it, so the process would
otherwise run with one task slot fewer for good. With ``--processes N`` the supervisor
starts a fresh process in its place, as it does for one that crashed or was killed.
``--max-memory`` caps each worker process's memory (RLIMIT_DATA on Linux), so that a task
allocating without bound gets `MemoryError` instead of exhausting the machine.

The app is imported as uvicorn imports it, and once in the supervisor before it starts any
process: a target that cannot be loaded ends the command at once with the reason (the
traceback, when the module's own import failed). Processes that still fail to boot (end
before they are ready) end it after a few attempts (`BOOT_ATTEMPTS`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import threading
from collections.abc import Callable
from typing import Annotated

import typer

from ..app import Afterward
from ..config import DEFAULT_CONCURRENCY, DEFAULT_GRACE_PERIOD
from ..errors import AfterwardError, ConfigurationError
from ..log import configure_worker_logging
from ..worker.loading import load_afterward
from ..worker.process import serve
from ..worker.supervisor import Supervisor
from ._common import fail

__all__ = ["worker"]


def worker(
    target: Annotated[str, typer.Argument(help="The app, as given to uvicorn: module:app.")],
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes. With more than one, a supervisor keeps that many running "
            "and starts another when one ends: killed, crashed, or retired with exit code 75 "
            "because a plain def task overran its time limit and holds its thread for good "
            "(the process stops taking work, lets its other tasks finish and hands back the "
            "rest). A single worker process exits with code 75 for its process manager to "
            "restart it.",
        ),
    ] = 1,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Tasks run at once per process.",
            show_default=f"the app's setting: AFTERWARD_CONCURRENCY, else {DEFAULT_CONCURRENCY}",
        ),
    ] = None,
    queue: Annotated[
        list[str] | None, typer.Option(help="Only these queues (repeat); all by default.")
    ] = None,
    grace_period: Annotated[
        float | None,
        typer.Option(
            help="Seconds running tasks get to finish on SIGTERM, or when the process retires.",
            show_default=f"the app's setting, else {DEFAULT_GRACE_PERIOD:g}",
        ),
    ] = None,
    max_memory: Annotated[
        str | None,
        typer.Option(
            help="Memory limit of each worker process, e.g. 512M or 2G (RLIMIT_DATA on "
            "Linux: heap, anonymous mappings and thread stacks; RLIMIT_AS elsewhere): a task "
            "allocating past it gets MemoryError, an ordinary failed attempt, instead of "
            "exhausting the machine. Leave room for the worker itself (about 150 MB with 8 "
            "task threads).",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(
            help="Logging level of the worker's processes: afterward's records and the "
            "app's, on standard error with their time and level (AFTERWARD_LOG_LEVEL, if "
            "set, sets afterward's own)."
        ),
    ] = "INFO",
) -> None:
    """Run an app's tasks in worker processes until SIGTERM or Ctrl-C."""
    memory_limit = None if max_memory is None else parse_size(max_memory)
    try:
        configure_worker_logging(log_level)
        if processes > 1:
            afterward = load_afterward(target)  # once here, not in every process started
            grace = afterward.settings.grace_period if grace_period is None else grace_period
            command = [sys.executable, "-m", "afterward", *_child_arguments(sys.argv[2:])]
            supervisor = Supervisor(command, processes=processes, grace_period=grace)
            raise typer.Exit(supervisor.run())
        afterward = _load(target, memory_limit)
        code = asyncio.run(
            serve(afterward, queues=queue, concurrency=concurrency, grace_period=grace_period)
        )
    except AfterwardError as exc:
        fail(exc)
    if threading.active_count() > 1:  # a timed-out plain function still holds its thread
        logging.shutdown()
        os._exit(code)
    raise typer.Exit(code)


def _load(target: str, memory_limit: int | None) -> Afterward:
    """Cap this process's memory (if asked), then load the app's `Afterward`."""
    if memory_limit is None:
        return load_afterward(target)
    undo = _limit_memory(memory_limit)
    try:
        return load_afterward(target)
    except MemoryError:
        undo()  # room to report it
        raise ConfigurationError(
            f"--max-memory {memory_limit / 2**20:.0f} MB is too little for this worker to "
            f"even load {target}: leave room for the worker itself (about 150 MB)"
        ) from None


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """Bytes in a size such as ``512M``, ``2G``, ``1.5GiB`` or ``1048576`` (binary units).

    :raises typer.BadParameter: not a positive size.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if match is None or float(match[1]) <= 0:
        raise typer.BadParameter(
            f"{text!r} is not a size such as 512M or 2G", param_hint="'--max-memory'"
        )
    return int(float(match[1]) * _UNITS[match[2]])


def _limit_memory(limit: int) -> Callable[[], None]:
    """Cap this process's memory at `limit` bytes (soft limit): its data on Linux
    (RLIMIT_DATA: heap, anonymous mappings, thread stacks), its address space elsewhere.
    Return what lifts the cap again.

    Not RLIMIT_AS on Linux: glibc reserves 64 MB of address space per malloc arena, up to
    8 per CPU, so a worker running 8 threads maps 0.7-1 GB before it stores anything, and
    an address-space cap in that range would starve it of threads instead of stopping a
    task that allocates without bound.
    """
    import resource  # POSIX only

    kind = resource.RLIMIT_DATA if sys.platform == "linux" else resource.RLIMIT_AS
    before = resource.getrlimit(kind)
    hard = before[1]
    if hard != resource.RLIM_INFINITY and limit > hard:
        raise ConfigurationError(
            f"--max-memory {limit} bytes is above this process's hard limit of {hard} bytes"
        )
    resource.setrlimit(kind, (limit, hard))
    return lambda: resource.setrlimit(kind, before)


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
