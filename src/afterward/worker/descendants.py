"""Processes that tasks leave behind, and stopping them when a worker stops.

A task may start a process and return, or be cancelled while its child runs: the child
would outlive the worker. At its stop a worker sends SIGTERM to every process still
descended from it, then SIGKILL to those alive after a short wait. Descendants are found
through ``/proc`` (Linux only; elsewhere none are found and nothing is signalled), each
checked by its start time before it is signalled, so that a pid reused by an unrelated
process is never hit.

A process whose parent exited before the stop is no longer a descendant: the kernel gives
it to the nearest *child subreaper* above it, or to init. `become_subreaper` makes this
process that subreaper, so such orphans stay in its tree until it stops them; it must then
reap them as they exit (`reap_orphans`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Collection

from .identity import proc_is_ours

__all__ = ["become_subreaper", "descendants", "reap_orphans", "stop_descendants"]

log = logging.getLogger("afterward.worker")

STOP_GRACE = 3.0
"""Seconds descendants get between SIGTERM and SIGKILL."""

_PR_SET_CHILD_SUBREAPER = 36
_KILL_WAIT = 1.0
_POLL = 0.05


def become_subreaper() -> bool:
    """Make this process the child subreaper of its tree (Linux): a process orphaned
    below it is re-parented to it instead of init. True if it now is one."""
    if sys.platform != "linux":
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _processes() -> dict[int, tuple[int, str, int]]:
    """Every process in ``/proc``: pid → (parent pid, state, start time); empty where
    ``/proc`` is missing or shows another PID namespace than ours."""
    if not proc_is_ours():
        return {}
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            found[int(entry)] = stat
    return found


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(parent pid, state, start time) of `pid`, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            fields = file.read().rsplit(")", 1)[1].split()
        return int(fields[1]), fields[0], int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def descendants(root: int | None = None) -> dict[int, int]:
    """The live (not zombie) processes descended from `root` (this process by default):
    pid → start time."""
    root = os.getpid() if root is None else root
    processes = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    found: dict[int, int] = {}
    todo = list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        parent, state, started = processes[pid]
        if state != "Z":
            found[pid] = started
        todo.extend(children.get(pid, ()))
    return found


def _signal(pid: int, started: int, signum: int) -> bool:
    """Send `signum` to `pid` if it is still the process that started at `started`."""
    if sys.platform != "linux":
        return False
    try:
        handle = os.pidfd_open(pid)
    except OSError:
        return False
    try:  # the pidfd pins the process; check it is the one we found, then signal it
        stat = _stat(pid)
        if stat is None or stat[2] != started or stat[1] == "Z":
            return False
        signal.pidfd_send_signal(handle, signum)
        return True
    except OSError:
        return False
    finally:
        os.close(handle)


def stop_descendants(grace: float = STOP_GRACE) -> list[int]:
    """SIGTERM every live descendant of this process, then SIGKILL those alive after
    `grace` seconds; return the pids signalled. A descendant that appears meanwhile (or
    is re-parented here) is signalled too. Zombies count as gone: this process's own are
    left for it (or, once it exits, its parent) to reap. Never raises."""
    become_subreaper()  # what a dying descendant leaves below it stays ours to stop
    signalled: dict[int, int] = {}
    deadline = time.monotonic() + grace
    killed_at: float | None = None
    try:
        while found := descendants():
            now = time.monotonic()
            if killed_at is None and now >= deadline:
                killed_at = now
            elif killed_at is not None and now - killed_at > _KILL_WAIT:
                log.error(
                    "%d process(es) left by tasks still alive after SIGKILL: %s",
                    len(found),
                    _pids(found),
                )
                break
            for pid, started in found.items():
                if killed_at is not None:
                    _signal(pid, started, signal.SIGKILL)
                elif signalled.get(pid) != started and _signal(pid, started, signal.SIGTERM):
                    signalled[pid] = started
            time.sleep(_POLL)
    except Exception:  # never let a cleanup stop the worker's exit
        log.exception("stopping the processes left by tasks failed")
    if signalled:
        log.warning(
            "stopped %d process(es) left by tasks%s: %s",
            len(signalled),
            f" (SIGKILL after {grace:.1f} s)" if killed_at is not None else "",
            _pids(signalled),
        )
    return list(signalled)


def reap_orphans(keep: Collection[int]) -> int:
    """Reap this process's zombie children except those in `keep` (children it waits for
    itself); return how many were reaped."""
    reaped = 0
    me = os.getpid()
    for pid, (parent, state, _) in _processes().items():
        if parent == me and state == "Z" and pid not in keep:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
                reaped += 1
    return reaped


def _pids(pids: Collection[int]) -> str:
    shown = sorted(pids)
    more = f" and {len(shown) - 20} more" if len(shown) > 20 else ""
    return ", ".join(map(str, shown[:20])) + more
