"""The ledger every benchmarked task writes to (standard library only: it is imported by
the task code of every peer, inside that peer's own virtualenv).

A task appends one line, ``<finished at> <enqueue→start delay>``, with one ``write`` to a
file opened for appending, so lines from many processes never interleave. Throughput comes
from the first and last finish times; latency from the delays.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

LEDGER_ENV = "AW_BENCH_LEDGER"


def record(enqueued_at: float, started_at: float | None = None) -> None:
    """Note that a task ran: call it first thing in the task (delay = start - enqueue)."""
    start = time.time() if started_at is None else started_at
    fd = os.open(os.environ[LEDGER_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{time.time():.6f} {start - enqueued_at:.6f}\n".encode())
    finally:
        os.close(fd)


def lines(path: Path) -> list[tuple[float, float]]:
    """(finished at, delay) per recorded run."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [(float(a), float(b)) for a, b in (line.split() for line in text.splitlines())]


def count(path: Path) -> int:
    """How many runs are recorded."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0
