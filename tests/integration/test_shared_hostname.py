"""Two workers with one hostname in different PID namespaces share a store: neither takes
the other's live tasks for a dead worker's (issue 16, finding 5).

One worker runs in this PID namespace, the other in a new one (``unshare --pid --fork
--mount-proc``), as containers with host networking or cloned VMs would: each sees the
other's hostname as its own, and the other's pid means nothing (or another process) in
its own namespace. Run with -s to see the timings.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from afterward import Afterward, JobState
from afterward.stores import JobFilter

from . import process_app
from .procs import env_for, stop, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("unshare") is None
        or os.geteuid() != 0
        or not Path("/proc/self/ns/pid").exists(),
        reason="needs root, Linux and unshare(1) to start a worker in a new PID namespace",
    ),
]

TARGET = "integration.process_app:afterward"
TASKS = 200
CONCURRENCY = 25


def start(folder: Path, url: str, name: str, prefix: list[str]) -> subprocess.Popen[bytes]:
    """An `afterward worker` (behind `prefix`), logging to `name`.log in `folder`."""
    command = [sys.executable, "-m", "afterward", "worker", TARGET]
    options = ["--concurrency", str(CONCURRENCY), "--grace-period", "5", "--log-level", "INFO"]
    with open(folder / f"{name}.log", "wb") as log:
        return subprocess.Popen(
            [*prefix, *command, *options], cwd=folder, env=env_for(folder, url), stderr=log
        )


def log_of(folder: Path, name: str) -> str:
    return (folder / f"{name}.log").read_text(errors="replace")


def lines(folder: Path, name: str) -> list[str]:
    path = folder / name
    return path.read_text().splitlines() if path.exists() else []


def stop_unshared(proc: subprocess.Popen[bytes]) -> None:
    """Stop the worker `unshare --fork` runs (unshare itself blocks SIGTERM)."""
    if proc.poll() is None:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        for child in children:
            os.kill(int(child), signal.SIGTERM)
    stop(proc)


@pytest.fixture
def workers(tmp_path: Path, store_url: str) -> Iterator[Path]:
    """A worker in this PID namespace and one in a new one, both ready; yields the folder."""
    here = start(tmp_path, store_url, "here", [])
    there = start(tmp_path, store_url, "there", ["unshare", "--pid", "--fork", "--mount-proc"])
    try:
        for name in ("here", "there"):

            def ready(n: str = name) -> bool:
                return " ready: " in log_of(tmp_path, n)

            wait_until(ready, 30, f"worker {name}")
        yield tmp_path
    finally:
        stop(here)
        stop_unshared(there)


def test_each_task_starts_once_with_workers_in_two_pid_namespaces(
    workers: Path, store_url: str
) -> None:
    folder = workers
    afterward = Afterward(url=store_url, execution="workers")

    async def enqueue() -> None:
        await afterward.enqueue_many(process_app.two_seconds, [(n,) for n in range(TASKS)])
        await afterward.aclose()

    async def stored() -> list[tuple[JobState, int]]:
        try:
            await afterward.open()
            jobs = await afterward.store.list(JobFilter(), limit=TASKS + 1)
            return [(job.state, job.attempts) for job in jobs]
        finally:
            await afterward.aclose()

    # Given two ready workers with one hostname, in two PID namespaces, on one store
    # When 200 tasks of 2 s are enqueued
    began = time.monotonic()
    asyncio.run(enqueue())
    everything = {str(n) for n in range(TASKS)}

    def starts() -> Counter[str]:
        return Counter(line.split()[0] for line in lines(folder, "started.txt"))

    def finished_or_started_twice() -> bool:
        return set(lines(folder, "done.txt")) >= everything or max(starts().values(), default=0) > 1

    wait_until(finished_or_started_twice, 90, "every task to run")
    took = time.monotonic() - began
    time.sleep(1.0)  # a take-over happening now would start a task again
    # Then each started exactly once, on one worker or the other
    started = starts()
    again = {key: n for key, n in started.items() if n != 1}
    namespaces = Counter(line.split()[1] for line in lines(folder, "started.txt"))
    print(
        f"\n{store_url.split(':')[0]}: {TASKS} tasks of 2 s on 2 workers (2 PID namespaces, "
        f"{CONCURRENCY} slots each): {took:.1f} s, {sum(started.values())} starts, "
        f"{len(again)} tasks started more than once, per namespace "
        f"{sorted(namespaces.values())}"
    )
    assert again == {}, f"tasks started more than once (key: starts): {again}"
    assert set(started) == everything
    assert len(namespaces) == 2, "both workers should have run tasks"
    for name in ("here", "there"):
        assert "took back" not in log_of(folder, name)
    # And each succeeded in its one attempt
    wait_until(
        lambda: all(state is JobState.SUCCEEDED for state, _ in asyncio.run(stored())),
        15,
        "every task to be recorded as succeeded",
    )
    assert len(asyncio.run(stored())) == TASKS
    assert {attempts for _, attempts in asyncio.run(stored())} == {1}
