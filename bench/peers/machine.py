"""The whole machine's CPU, from /proc/stat (standard library only: the driver imports it
inside every peer's own virtualenv, and `bench.web` in afterward's)."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_ticks() -> tuple[int, int]:
    """The machine's (busy, total) clock ticks since boot."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def cores_busy(since: tuple[int, int]) -> float:
    """How many of the machine's cores were busy, on average, since `cpu_ticks()` gave
    `since`."""
    busy, total = cpu_ticks()
    return (busy - since[0]) / max(1, total - since[1]) * (os.cpu_count() or 1)
