"""Processes that tasks start do not outlive the worker's stop (issue 16, finding 7).

Real `afterward worker` processes run real tasks that start processes and return, fork
and hang until cancelled, or start a daemon; after SIGTERM every such process is gone,
and a process that is not the worker's descendant is left alone. Run with -s to see the
timings.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from afterward import Afterward

from . import process_app
from .procs import env_for, stop, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform != "linux", reason="descendants are found through /proc"),
]

TARGET = "integration.process_app:afterward"


def start_time(pid: int) -> int | None:
    """The start time of a live (not zombie) `pid`, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def children(folder: Path) -> dict[int, tuple[str, int]]:
    """The processes the tasks started: pid → (how, start time)."""
    path = folder / "children.txt"
    found = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        kind, pid, started = line.split()
        found[int(pid)] = (kind, int(started))
    return found


def alive(found: dict[int, tuple[str, int]]) -> dict[int, str]:
    """Those of `found` still running (the same process: same start time)."""
    return {pid: kind for pid, (kind, started) in found.items() if start_time(pid) == started}


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A process of the test's own, not the worker's: it must survive the worker's stop."""
    proc = subprocess.Popen(["sleep", "1000"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def leftovers(tmp_path: Path) -> Iterator[Path]:
    """The working directory; whatever the tasks started is killed after the test."""
    yield tmp_path
    for pid in alive(children(tmp_path)):
        os.kill(pid, signal.SIGKILL)


Task = Callable[[], object]


def run_and_stop(folder: Path, tasks: list[Task], *worker_options: str) -> tuple[float, str]:
    """Start a worker, run `tasks` one by one until each has noted its child, SIGTERM
    the worker; return the seconds its stop took and its log."""
    url = f"sqlite:///{folder / 'tasks.db'}"
    command = [sys.executable, "-m", "afterward", "worker", TARGET, "--log-level", "INFO"]
    with open(folder / "worker.log", "wb") as log:
        worker = subprocess.Popen(
            [*command, "--grace-period", "1", *worker_options],
            cwd=folder,
            env=env_for(folder, url),
            stderr=log,
        )
    try:
        afterward = Afterward(url=url, execution="workers")
        # One at a time: a fork while another thread is in Popen would hand the forked
        # child that Popen's error pipe, and the Popen would wait for the child to exit.
        for n, func in enumerate(tasks, 1):
            asyncio.run(afterward.enqueue(func))

            def started(n: int = n) -> bool:
                return len(children(folder)) == n

            wait_until(started, 30, f"{func.__name__}'s child")
        asyncio.run(afterward.aclose())
        assert len(alive(children(folder))) == len(tasks)
        worker.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        worker.wait(30)
        took = time.monotonic() - stopping
    finally:
        stop(worker)
    time.sleep(0.2)  # a killed process's exit is seen at once; this is margin
    return took, (folder / "worker.log").read_text(errors="replace")


LEFT_RUNNING: list[Task] = [
    process_app.spawn_and_return,  # started a process and returned
    process_app.spawn_in_new_session,  # the same, in a session of its own
    process_app.fork_and_hang,  # forked a child (that ignores SIGTERM), hung until cancelled
]


@pytest.mark.parametrize(
    ("options", "tasks"),
    [
        pytest.param([], LEFT_RUNNING, id="worker"),
        # A daemon is orphaned at once (its parent exits while the worker runs): the
        # supervisor, subreaper of its workers' trees, is the one that finds it.
        pytest.param(["--processes", "2"], [*LEFT_RUNNING, process_app.daemonize], id="supervisor"),
    ],
)
def test_no_process_a_task_started_outlives_the_stop(
    options: list[str], tasks: list[Task], leftovers: Path, bystander: subprocess.Popen[bytes]
) -> None:
    # Given a worker (or supervisor) whose tasks left processes running
    # When it is stopped with SIGTERM
    took, log = run_and_stop(leftovers, tasks, *options)
    # Then none of those processes is left, and the bystander still runs
    print(f"\nstop with {len(tasks)} processes left by tasks: {took:.2f} s (grace 1 s)")
    assert alive(children(leftovers)) == {}, log
    assert bystander.poll() is None
    assert "process(es) left by tasks (SIGKILL after 3.0 s)" in log


def test_the_supervisor_reaps_orphans_that_exit(leftovers: Path) -> None:
    # Given a supervisor whose workers' tasks started daemons that exit at once
    url = f"sqlite:///{leftovers / 'tasks.db'}"
    command = [sys.executable, "-m", "afterward", "worker", TARGET, "--processes", "2"]
    supervisor = subprocess.Popen(command, cwd=leftovers, env=env_for(leftovers, url))
    try:
        afterward = Afterward(url=url, execution="workers")
        asyncio.run(afterward.enqueue_many(process_app.short_daemon, [(n,) for n in range(5)]))
        asyncio.run(afterward.aclose())
        daemons = leftovers / "short.txt"
        wait_until(
            lambda: daemons.exists() and len(daemons.read_text().split()) == 5, 30, "the daemons"
        )

        def zombies() -> list[int]:
            found = []
            for pid in map(int, daemons.read_text().split()):
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if fields[0] == "Z" and int(fields[1]) == supervisor.pid:
                    found.append(pid)
            return found

        # Then none of them stays a zombie of the supervisor (re-parented to it, reaped)
        time.sleep(0.5)
        wait_until(lambda: zombies() == [], 5, "the supervisor to reap its orphans")
    finally:
        stop(supervisor)
