"""Run N worker processes, restart any that dies, stop them all gracefully on a signal.

The supervisor is the child subreaper of its workers' trees (Linux): a process a task
started and that outlived its parent (a daemon, or the child of a worker that was
killed) is re-parented to it instead of init. It reaps those as they exit, and stops the
ones still alive after its workers have stopped (see `descendants`)."""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Sequence
from types import FrameType

from .descendants import become_subreaper, reap_orphans, stop_descendants
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
        self._orphans_exited = False
        self.children: list[subprocess.Popen[bytes]] = []

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _on_child_exit(self, signum: int, frame: FrameType | None) -> None:
        self._orphans_exited = True

    def run(self) -> int:
        """Supervise until told to stop; return the exit code."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        if become_subreaper():
            signal.signal(signal.SIGCHLD, self._on_child_exit)
        self.children = [self._spawn() for _ in range(self._processes)]
        while not self._stopping:
            time.sleep(_CHECK_INTERVAL)
            if self._orphans_exited:
                self._orphans_exited = False
                reap_orphans(keep={child.pid for child in self.children})
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
        stop_descendants()  # what tasks left running, re-parented here
        reap_orphans(keep=())
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
