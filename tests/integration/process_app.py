"""The app of the worker-process tests (shared hostname, orphans): its tasks leave their
traces as lines appended (O_APPEND, one write each) to files in the working directory."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time

from afterward import Afterward, task

afterward = Afterward()


def append(name: str, line: str) -> None:
    """Add one line to `name`; one write, so lines of concurrent tasks never mix."""
    fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def start_time(pid: int) -> int:
    """The start time of `pid` (clock ticks since boot), which tells it from a reuse."""
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[19])


@task
async def two_seconds(key: int) -> None:
    """Note its start (with the worker's PID namespace and pid), run 2 s, note its end."""
    append("started.txt", f"{key} {os.readlink('/proc/self/ns/pid')} {os.getpid()}")
    await asyncio.sleep(2)
    append("done.txt", str(key))


def _note_child(kind: str, pid: int) -> None:
    append("children.txt", f"{kind} {pid} {start_time(pid)}")


@task
def spawn_and_return() -> None:
    """Start a long process and return without waiting for it."""
    child = subprocess.Popen(["sleep", "1000"])
    _note_child("popen", child.pid)


@task
def spawn_in_new_session() -> None:
    """Start a long process in a session of its own (out of the worker's process group)."""
    child = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    _note_child("setsid", child.pid)


@task
async def fork_and_hang() -> None:
    """Fork a child that sleeps, then hang until cancelled (the worker's stop)."""
    pid = os.fork()
    if pid == 0:  # the child: sleep, never return into the worker's code
        try:
            time.sleep(1000)
        finally:
            os._exit(0)
    _note_child("fork", pid)
    await asyncio.sleep(1000)


@task
def daemonize() -> None:
    """Start a daemon the classic way: its parent exits, so it is orphaned at once."""
    subprocess.run(
        ["sh", "-c", "sleep 1000 >/dev/null 2>&1 </dev/null & echo $! > daemon.pid"],
        start_new_session=True,
        check=True,
    )
    with open("daemon.pid") as pid:
        _note_child("daemon", int(pid.read()))


@task
def short_daemon(n: int) -> None:
    """Start a daemon that exits after 0.1 s, orphaned at once (a zombie until reaped)."""
    subprocess.run(
        ["sh", "-c", f"sleep 0.1 >/dev/null 2>&1 </dev/null & echo $! > short-{n}.pid"],
        start_new_session=True,
        check=True,
    )
    with open(f"short-{n}.pid") as pid:
        append("short.txt", pid.read().strip())
