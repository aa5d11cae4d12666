"""The tasks experiments run. Each records itself in the ledger after doing its work."""

from __future__ import annotations

import ctypes
import os
import time

from afterward import Afterward

from .ledger import record

afterward = Afterward()
"""Configured from AFTERWARD_URL by the harness; workers load ``faults.app:afterward``."""


def work(key: str, ms: float) -> None:
    """A short task: sleep `ms` milliseconds, then record."""
    time.sleep(ms / 1000)
    record(key)


def burn(key: str, seconds: float) -> None:
    """Hold the GIL in pure Python for `seconds`, then record."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    record(key)


def segfault(key: str) -> None:
    """Crash the process with SIGSEGV."""
    ctypes.string_at(0)


def hard_exit(key: str) -> None:
    """Leave the process at once, as `os._exit` does."""
    os._exit(3)


def hog(key: str) -> None:
    """Allocate memory until something stops it."""
    blocks = []
    while True:
        blocks.append(bytearray(64 * 1024 * 1024))


def spin(key: str) -> None:
    """Never return."""
    while True:
        time.sleep(0.01)
