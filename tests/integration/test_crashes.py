"""Crash tests with real processes and SIGKILL: nothing accepted is lost.

Each prints what it measured (run pytest with -s to see it).
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from afterward import Afterward, JobState

from . import crash_app
from .procs import free_port, kill, start_uvicorn, start_worker, stop, wait_until

pytestmark = pytest.mark.slow

TARGET = "integration.crash_app:app"


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, str]:
    """A working directory for the processes (ledgers go there), and the store's URL."""
    return tmp_path, f"sqlite:///{tmp_path / 'tasks.db'}"


def lines(folder: Path, name: str) -> list[str]:
    path = folder / name
    return path.read_text().splitlines() if path.exists() else []


def test_sigkill_of_uvicorn_mid_task_runs_the_task_after_restart(site: tuple[Path, str]) -> None:
    folder, url = site
    port = free_port()
    # Given a uvicorn process that answered 200 and is running the request's 3 s task
    server = start_uvicorn(folder, TARGET, port, url)
    try:
        response = httpx.post(f"http://127.0.0.1:{port}/long/report-1?seconds=3")
        assert response.status_code == 200
        wait_until(lambda: len(lines(folder, "started.txt")) == 1, 10, "the task to start")
        # When the server is SIGKILLed mid-task
        kill(server)
        assert lines(folder, "done.txt") == []
        # And started again
        restarted_at = time.monotonic()
        server = start_uvicorn(folder, TARGET, port, url)
        # Then the task runs to completion in the new process
        wait_until(lambda: len(lines(folder, "done.txt")) == 1, 30, "the task to finish")
        recovery = time.monotonic() - restarted_at
    finally:
        stop(server)
    started = lines(folder, "started.txt")
    assert len(started) == 2  # the killed attempt and the recovered one
    assert lines(folder, "done.txt")[0].startswith("report-1 ")
    print(f"\nuvicorn SIGKILL: restart → task done in {recovery:.2f} s (task itself runs 3 s)")


def test_sigkill_of_a_worker_mid_task_another_worker_completes_it(
    site: tuple[Path, str],
) -> None:
    folder, url = site
    afterward = Afterward(url=url, execution="workers")
    # Given two worker processes and a 2 s task that one of them is running
    workers = [start_worker(folder, TARGET, url) for _ in range(2)]
    try:
        task_id = asyncio.run(afterward.enqueue(crash_app.long_task, "job", 2.0))
        wait_until(lambda: len(lines(folder, "started.txt")) == 1, 20, "a worker to start it")
        holder_pid = int(lines(folder, "started.txt")[0].split()[1])
        holder = next(w for w in workers if w.pid == holder_pid)
        # When that worker is SIGKILLed
        kill(holder)
        killed_at = time.monotonic()
        # Then the other worker takes the task over and completes it
        wait_until(lambda: len(lines(folder, "done.txt")) == 1, 30, "the other worker")
        took = time.monotonic() - killed_at
    finally:
        for w in workers:
            stop(w)
    survivor = next(w for w in workers if w.pid != holder_pid)
    assert lines(folder, "done.txt") == [f"job {survivor.pid}"]
    job = asyncio.run(afterward.get(task_id))
    assert job.state is JobState.SUCCEEDED
    assert [a.outcome for a in job.history] == ["lost", "succeeded"]
    print(f"\nworker SIGKILL: task done by the other worker {took:.2f} s after the kill")


def test_no_task_lost_over_1000_tasks_with_4_worker_kills(site: tuple[Path, str]) -> None:
    folder, url = site
    afterward = Afterward(url=url, execution="workers")
    total = 1000

    async def enqueue_all() -> None:
        for n in range(total):
            await afterward.enqueue(crash_app.tick, n)

    # Given 1,000 queued tasks and three worker processes
    asyncio.run(enqueue_all())
    workers = [start_worker(folder, TARGET, url, "--concurrency", "4") for _ in range(3)]
    rng = random.Random(7)
    started = time.monotonic()
    try:
        # When a random worker is SIGKILLed four times while they work (and restarted)
        for _ in range(4):
            wait_until(lambda: len(lines(folder, "ledger.txt")) > 0, 20, "progress")
            time.sleep(0.4)
            victim = rng.randrange(len(workers))
            kill(workers[victim])
            workers[victim] = start_worker(folder, TARGET, url, "--concurrency", "4")

        def all_done() -> bool:
            counts = asyncio.run(afterward.store.counts())
            return counts.get(("default", JobState.SUCCEEDED), 0) == total

        # Then every task succeeds
        wait_until(all_done, 120, "all tasks to succeed")
    finally:
        for w in workers:
            stop(w)
    elapsed = time.monotonic() - started
    ran = lines(folder, "ledger.txt")
    lost = total - len(set(ran))
    twice = len(ran) - len(set(ran))
    print(f"\n1,000 tasks, 4 worker SIGKILLs: lost {lost}, ran twice {twice}, {elapsed:.1f} s")
    assert lost == 0
    assert set(ran) == {str(n) for n in range(total)}
