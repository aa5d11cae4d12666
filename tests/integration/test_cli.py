"""The `afterward` command against a real SQLite store."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from afterward import Afterward, Job, JobState, RetryPolicy
from afterward.cli import app as cli
from afterward.testing import drain

from . import apps
from .procs import start_worker, wait_until

runner = CliRunner()


@pytest.fixture
def afterward(tmp_path: Path) -> Afterward:
    return Afterward(
        url=f"sqlite:///{tmp_path / 'cli.db'}",
        execution="workers",
        retry=RetryPolicy(max_attempts=1),
    )


def invoke(afterward: Afterward, *args: str) -> str:
    result = runner.invoke(cli, [*args, "--url", afterward.settings.url], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_status_counts_by_queue_and_state(afterward: Afterward) -> None:
    # Given one succeeded and one failed task
    async def given() -> None:
        await afterward.enqueue(apps.record, "ok")
        await afterward.enqueue(apps.always_fails, "smtp down")
        await drain(afterward, raise_on_failure=False)

    asyncio.run(given())
    # When status is shown
    output = invoke(afterward, "status")
    # Then a table counts them per state
    assert "default" in output
    row = next(line for line in output.splitlines() if "default" in line)
    assert [c.strip() for c in row.split("│")[1:8]] == ["0", "0", "0", "0", "1", "1", "0"]


def test_ls_show_retry_cancel(afterward: Afterward) -> None:
    # Given a failed task and a queued one
    async def given() -> tuple[str, str]:
        failed = await afterward.enqueue(apps.always_fails, "smtp down")
        await drain(afterward, raise_on_failure=False)
        queued = await afterward.enqueue(apps.record, "later")
        return failed, queued

    failed, queued = asyncio.run(given())
    # When failed tasks are listed, Then only the failed one is shown, with its error
    listing = invoke(afterward, "ls", "--state", "failed")
    assert failed in listing and queued not in listing
    assert "ValueError: smtp down" in listing
    # When it is shown, Then its attempt and traceback are there
    shown = invoke(afterward, "show", failed)
    assert "always_fails" in shown and "Traceback" in shown and "attempt 1" in shown
    # When it is retried and the queued one cancelled, Then the states follow
    assert "queued again" in invoke(afterward, "retry", failed)
    assert queued in invoke(afterward, "cancel", queued)
    states = {j.id: j.state for j in asyncio.run(_all(afterward))}
    assert states == {failed: JobState.QUEUED, queued: JobState.CANCELLED}


def test_errors_are_readable_and_exit_non_zero(afterward: Afterward) -> None:
    # Given an empty store, When an unknown id is shown or a queued task retried
    asyncio.run(_all(afterward))
    result = runner.invoke(cli, ["show", "nope", "--url", afterward.settings.url])
    # Then the command fails with afterward's message, not a traceback
    assert result.exit_code == 1
    assert "No task by the id of 'nope'" in result.output


def test_purge_deletes_only_old_finished_tasks(afterward: Afterward) -> None:
    # Given a succeeded task and a queued one
    async def given() -> str:
        await afterward.enqueue(apps.record, "done")
        await drain(afterward)
        return await afterward.enqueue(apps.record, "pending")

    pending = asyncio.run(given())
    time.sleep(0.05)
    # When finished tasks older than 0 s are purged
    output = invoke(afterward, "purge", "--older-than", "0s", "--yes")
    # Then the succeeded one is gone and the queued one kept
    assert "purged 1 task(s)" in output
    assert [j.id for j in asyncio.run(_all(afterward))] == [pending]


def test_worker_sigterm_finishes_or_hands_back_and_exits_cleanly(
    afterward: Afterward, tmp_path: Path
) -> None:
    # Given a worker process with a 0.5 s grace period running a task that lasts 60 s
    from . import crash_app

    url = afterward.settings.url
    task_id = asyncio.run(afterward.enqueue(crash_app.long_task, "slow", 60.0))
    worker = start_worker(tmp_path, "integration.crash_app:app", url, "--grace-period", "0.5")
    wait_until(lambda: (tmp_path / "started.txt").exists(), 20, "the task to start")
    # When it receives SIGTERM
    worker.send_signal(signal.SIGTERM)
    # Then it exits 0 promptly, and the task is queued again without spending an attempt
    assert worker.wait(15) == 0
    job = asyncio.run(afterward.get(task_id))
    assert job.state is JobState.QUEUED
    assert job.attempts == 1 and job.max_attempts == 2
    assert [a.outcome for a in job.history] == ["released"]


async def _all(afterward: Afterward) -> list[Job]:
    from afterward.stores import JobFilter

    await afterward.open()
    return list(await afterward.store.list(JobFilter()))
