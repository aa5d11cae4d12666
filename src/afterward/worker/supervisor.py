"""Run N worker processes, restart any that dies, stop them all gracefully on a signal."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Sequence
from types import FrameType

from .process import EXIT_RETIRED

__all__ = ["Supervisor"]

log = logging.getLogger("afterward.worker")

_CHECK_INTERVAL = 0.2


class Supervisor:
    """Keeps `processes` copies of `command` running until SIGTERM/SIGINT."""

    def __init__(self, command: Sequence[str], *, processes: int, grace_period: float) -> None:
        self._command = list(command)
        self._processes = processes
        self._grace_period = grace_period
        self._stopping = False
        self.children: list[subprocess.Popen[bytes]] = []

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def run(self) -> int:
        """Supervise until told to stop; return the exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.children = [self._spawn() for _ in range(self._processes)]
        while not self._stopping:
            time.sleep(_CHECK_INTERVAL)
            for i, child in enumerate(self.children):
                code = child.poll()
                if code is not None and not self._stopping:
                    log.warning(
                        "worker process %d ended (%s); starting another", child.pid, _cause(code)
                    )
                    self.children[i] = self._spawn()
        return self._stop_children()

    def _spawn(self) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(self._command)
        log.info("worker process %d started", child.pid)
        return child

    def _stop_children(self) -> int:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._grace_period + 10.0
        for child in self.children:
            try:
                child.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker process %d did not stop in time; killing it", child.pid)
                child.kill()
                child.wait()
        return 0


def _cause(code: int) -> str:
    """Why a child ended, from its return code."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    if code == EXIT_RETIRED:
        return f"exit code {code}: retired, a task overran its time limit and holds a thread"
    return f"exit code {code}"
