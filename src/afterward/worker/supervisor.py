"""Run N worker processes, restart any that dies, stop them all gracefully on a signal.

The supervisor is the child subreaper of its workers' trees (Linux): a process a task
started and that outlived its parent (a daemon, or the child of a worker that was
killed) is re-parented to it instead of init. It reaps those as they exit, and stops the
ones still alive after its workers have stopped (see `descendants`)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

from .descendants import become_subreaper, reap_orphans, stop_descendants
from .process import EXIT_RETIRED, READY_FD_VARIABLE

__all__ = ["BOOT_ATTEMPTS", "Supervisor"]

log = logging.getLogger("afterward.worker")

_CHECK_INTERVAL = 0.2

BOOT_ATTEMPTS = 3
"""Worker processes in a row that may end before they are ready (their store open) before
the supervisor gives up: the app or the options are broken, and would be for every
process started. A process that ends after it was ready (a task crashed it, it retired)
is always replaced."""


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    ready_pipe: int | None
    """Read end of the pipe the process writes to once ready; None once read or closed."""
    ready: bool = field(default=False)

    def check_ready(self) -> None:
        """Read the pipe without blocking: the process may have said it is ready."""
        if self.ready_pipe is None:
            return
        try:
            said = os.read(self.ready_pipe, 1)
        except BlockingIOError:
            return
        self.ready = bool(said)
        self.close()

    def close(self) -> None:
        if self.ready_pipe is not None:
            os.close(self.ready_pipe)
            self.ready_pipe = None


class Supervisor:
    """Keeps `processes` copies of `command` running until SIGTERM/SIGINT, or until
    `BOOT_ATTEMPTS` processes in a row end before they are ready (a failed boot)."""

    def __init__(self, command: Sequence[str], *, processes: int, grace_period: float) -> None:
        self._command = list(command)
        self._processes = processes
        self._grace_period = grace_period
        self._stopping = False
        self._orphans_exited = False
        self._failed_boots = 0
        self.children: list[_Child] = []

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _on_child_exit(self, signum: int, frame: FrameType | None) -> None:
        self._orphans_exited = True

    def run(self) -> int:
        """Supervise until told to stop (exit code 0) or until worker processes fail to
        boot (exit code 1)."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        if become_subreaper():
            signal.signal(signal.SIGCHLD, self._on_child_exit)
        self.children = [self._spawn() for _ in range(self._processes)]
        while not self._stopping:
            time.sleep(_CHECK_INTERVAL)
            if self._orphans_exited:
                self._orphans_exited = False
                reap_orphans(keep={child.process.pid for child in self.children})
            for i, child in enumerate(self.children):
                if not self._stopping:
                    self._check(i, child)
        failed = self._failed_boots >= BOOT_ATTEMPTS
        self._stop_children()
        return 1 if failed else 0

    def _check(self, i: int, child: _Child) -> None:
        """Note whether `child` is ready; replace it if it ended, unless it is one failed
        boot too many (then stop)."""
        was_ready = child.ready
        child.check_ready()
        if child.ready and not was_ready:
            self._failed_boots = 0
        code = child.process.poll()
        if code is None:
            return
        child.close()
        pid = child.process.pid
        if child.ready:
            log.warning("worker process %d ended (%s); starting another", pid, _cause(code))
        else:
            self._failed_boots += 1
            if self._failed_boots >= BOOT_ATTEMPTS:
                log.error(
                    "worker processes failed to boot: %d in a row ended before they were "
                    "ready (the last: %s); stopping (see their errors above)",
                    self._failed_boots,
                    _cause(code),
                )
                self._stopping = True
                return
            log.warning(
                "worker process %d ended before it was ready (%s); starting another",
                pid,
                _cause(code),
            )
        self.children[i] = self._spawn()

    def _spawn(self) -> _Child:
        read, write = os.pipe()
        os.set_blocking(read, False)
        try:
            process = subprocess.Popen(
                self._command,
                pass_fds=(write,),
                env={**os.environ, READY_FD_VARIABLE: str(write)},
            )
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        log.info("worker process %d started", process.pid)
        return _Child(process, read)

    def _stop_children(self) -> None:
        for child in self.children:
            child.close()
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._grace_period + 10.0
        for child in self.children:
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker process %d did not stop in time; killing it", child.process.pid)
                child.process.kill()
                child.process.wait()
        stop_descendants()  # what tasks left running, re-parented here
        reap_orphans(keep=())


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
