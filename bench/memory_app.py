"""The app the memory benchmark's worker runs: one no-op task that leaves a mark."""

import os

from afterward import Afterward, task

afterward = Afterward()


@task  # enqueued by the benchmark, not by this app's code
def noop(ledger: str) -> None:
    """Append one byte to `ledger` (its size counts the tasks run)."""
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)
