"""Worker identities, and telling whether the process behind one is gone.

An identity is ``host/pid/space.token``. ``space`` names the PID space the pid was taken
from: a short hash of the kernel's boot id and the PID namespace. A holder with our host
and our space whose process no longer exists is dead for certain, so its tasks can be
taken back at once instead of waiting for its lease to run out.

Any other holder is judged by its lease alone, never by its pid: one on another host; one
in another PID namespace on this host (a container sharing the host's name through host
networking: its pid 40 is not our pid 40); one from another boot (a cloned VM keeping the
hostname); an identity from before spaces (``host/pid/token``); and every holder when this
platform cannot name its space (no ``/proc``, as on macOS).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from collections.abc import Iterable
from typing import NamedTuple

__all__ = [
    "WorkerIdentity",
    "dead_local_workers",
    "new_worker_id",
    "parse_worker_id",
    "pid_space",
    "proc_is_ours",
]

_BOOT_ID = "/proc/sys/kernel/random/boot_id"
_PID_NAMESPACE = "/proc/self/ns/pid"
_PROC_SELF = "/proc/self"
_SPACE_LENGTH = 12
"""Hex digits of the space: 48 bits, so two namespaces sharing a hostname almost surely
differ (a collision would let them judge each other's pids, as before spaces)."""


class WorkerIdentity(NamedTuple):
    """A worker identity taken apart."""

    host: str
    pid: int
    space: str | None
    """The PID space the pid belongs to; None in an identity that does not name one."""


def new_worker_id() -> str:
    """A fresh identity for this process."""
    token = secrets.token_hex(4)
    space = pid_space()
    tail = token if space is None else f"{space}.{token}"
    return f"{socket.gethostname()}/{os.getpid()}/{tail}"


def parse_worker_id(worker_id: str) -> WorkerIdentity | None:
    """The host, pid and space of an identity; None if it is not one afterward made."""
    parts = worker_id.rsplit("/", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    space, dot, _ = parts[2].rpartition(".")
    return WorkerIdentity(parts[0], int(parts[1]), space if dot and space else None)


def pid_space() -> str | None:
    """This process's PID space: a hash of the boot id and the PID namespace, the two
    things that must match for a pid to mean the same process; None where they cannot
    be read."""
    try:
        with open(_BOOT_ID, encoding="ascii") as boot:
            boot_id = boot.read().strip()
        namespace = os.readlink(_PID_NAMESPACE)
    except (OSError, UnicodeDecodeError):
        return None
    if not boot_id or not namespace:
        return None
    digest = hashlib.sha256(f"{boot_id}\n{namespace}".encode()).hexdigest()
    return digest[:_SPACE_LENGTH]


def dead_local_workers(holders: Iterable[str]) -> list[str]:
    """The holders that ran on this host, in our PID space, in a process that no longer
    exists. Holders of any other space (or none) are left to their leases."""
    here = pid_space()
    if here is None:
        return []
    host = socket.gethostname()
    own_proc = proc_is_ours()
    dead = []
    for holder in holders:
        identity = parse_worker_id(holder)
        if identity is None or identity.host != host or identity.space != here:
            continue
        if identity.pid != os.getpid() and not _alive(identity.pid, own_proc):
            dead.append(holder)
    return dead


def proc_is_ours() -> bool:
    """Whether ``/proc`` shows our PID namespace (not so after ``unshare --pid`` without
    ``--mount-proc``): only then does ``/proc/<pid>`` describe our pid."""
    try:
        return os.readlink(_PROC_SELF) == str(os.getpid())
    except OSError:
        return False


def _alive(pid: int, own_proc: bool) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not own_proc:
        return True
    try:  # a killed child its parent has not reaped yet is a zombie: dead for our purpose
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
