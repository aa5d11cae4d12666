"""Worker identities, and telling whether the process behind one is gone.

An identity is ``host/pid/token``. On the same host, a holder whose process no longer
exists is dead for certain, so its tasks can be taken back at once instead of waiting
for its lease to run out.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable

__all__ = ["dead_local_workers", "new_worker_id"]


def new_worker_id() -> str:
    """A fresh identity for this process."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


def dead_local_workers(holders: Iterable[str]) -> list[str]:
    """The holders that ran on this host in a process that no longer exists."""
    host = socket.gethostname()
    dead = []
    for holder in holders:
        parts = holder.rsplit("/", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid != os.getpid() and not _alive(pid):
            dead.append(holder)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet is a zombie: dead for our purpose
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
