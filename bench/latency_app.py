"""The app the latency benchmark's worker runs: one task that notes when it started."""

import os
import time

from afterward import Afterward, task

afterward = Afterward()


@task  # enqueued by the benchmark, not by this app's code
def note_start(enqueued_at: float, ledger: str) -> None:
    """Append the enqueue→start delay (seconds) to `ledger`."""
    delay = time.time() - enqueued_at
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{delay:.6f}\n".encode())
    finally:
        os.close(fd)
