"""`afterward retry` of many tasks, on every store: several ids or prefixes, or every
failed task of a queue or function with `--failed`, each error reported and the rest
retried."""

from __future__ import annotations

import asyncio
import time

from typer.testing import CliRunner

from afterward.cli import app as cli
from afterward.jobs import Failure, JobState, NewJob
from afterward.stores import JobFilter, store_from_url

runner = CliRunner()


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Exit code, standard output and standard error of the command."""
    result = runner.invoke(cli, list(args), env={"COLUMNS": "200"}, input=stdin)
    return result.exit_code, result.stdout, result.stderr


def write(url: str, tasks: list[tuple[str, str, str, bool]]) -> None:
    """Store tasks given as (id, queue, function, failed): failed ones after one attempt
    that raised, the others queued."""

    async def go() -> None:
        store = store_from_url(url)
        await store.open()
        now = time.time() - 60
        try:
            for n, (task_id, queue, function, failed) in enumerate(tasks):
                job = NewJob(
                    id=task_id, function=function, payload="{}", queue=queue, max_attempts=1
                )
                await store.enqueue([job], now=now + n)
                if failed:
                    (taken,) = await store.acquire(
                        "w1", now=now + n, lease=30, limit=1, queues=[queue], ids=[task_id]
                    )
                    failure = Failure(error="ValueError: boom", traceback="", retry_at=None)
                    assert await store.fail(task_id, "w1", taken.attempts, failure, now=now + n)
        finally:
            await store.close()

    asyncio.run(go())


def states(url: str) -> dict[str, JobState]:
    async def read() -> dict[str, JobState]:
        store = store_from_url(url)
        await store.open()
        try:
            return {j.id: j.state for j in await store.list(JobFilter(), limit=1000)}
        finally:
            await store.close()

    return asyncio.run(read())


MAIL = "app.tasks:send_mail"
SMS = "app.tasks:send_sms"


def test_several_ids_and_prefixes_are_retried_each_error_said(store_url: str) -> None:
    # Given three failed tasks and a queued one
    write(
        store_url,
        [
            ("aaaa1111", "default", MAIL, True),
            ("bbbb2222", "default", MAIL, True),
            ("cccc3333", "default", MAIL, True),
            ("dddd4444", "default", MAIL, False),
        ],
    )
    # When two are retried by id and prefix
    code, out, err = run("retry", "aaaa1111", "bbbb", "--url", store_url)
    # Then both are queued again, each said, and the third stays failed
    assert code == 0, out + err
    assert "task aaaa1111 queued again" in out and "task bbbb2222 queued again" in out
    assert states(store_url) == {
        "aaaa1111": JobState.QUEUED,
        "bbbb2222": JobState.QUEUED,
        "cccc3333": JobState.FAILED,
        "dddd4444": JobState.QUEUED,
    }
    # When one id is unknown and one task is queued, Then each is reported, the rest
    # retried, and the command fails
    code, out, err = run("retry", "nosuch", "dddd4444", "cccc3333", "--url", store_url)
    assert code == 1, out + err
    assert "nosuch" in err and "dddd4444" in err and "it is queued" in err
    assert "task cccc3333 queued again" in out
    assert states(store_url)["cccc3333"] is JobState.QUEUED


def test_failed_retries_every_failed_task_of_a_queue_and_function(store_url: str) -> None:
    # Given failed tasks in two queues and of two functions, and a queued one
    write(
        store_url,
        [
            ("mail-1", "emails", MAIL, True),
            ("mail-2", "emails", MAIL, True),
            ("sms-1", "emails", SMS, True),
            ("other-1", "reports", MAIL, True),
            ("queued-1", "emails", MAIL, False),
        ],
    )
    # When the failed ones of queue emails and function send_mail are retried
    args = ("retry", "--failed", "--queue", "emails", "--function", "send_mail", "--yes")
    code, out, err = run(*args, "--url", store_url)
    # Then those two, and only those, are queued again, and the count is printed
    assert code == 0, out + err
    assert "2 failed task(s)" in out and "queued 2 task(s) again" in out
    assert states(store_url) == {
        "mail-1": JobState.QUEUED,
        "mail-2": JobState.QUEUED,
        "sms-1": JobState.FAILED,
        "other-1": JobState.FAILED,
        "queued-1": JobState.QUEUED,
    }
    # When every failed task is retried, Then the other two are
    code, out, err = run("retry", "--failed", "--yes", "--url", store_url)
    assert code == 0 and "queued 2 task(s) again" in out, out + err
    assert set(states(store_url).values()) == {JobState.QUEUED}
    # And with none left it says so
    code, out, _ = run("retry", "--failed", "--url", store_url)
    assert code == 0 and "nothing to retry" in out


def test_failed_asks_before_retrying(store_url: str) -> None:
    # Given a failed task
    write(store_url, [("mail-1", "default", MAIL, True)])
    # When retry --failed is declined, Then it said how many and retried none
    code, out, _ = run("retry", "--failed", "--url", store_url, stdin="n\n")
    assert code == 1
    assert "1 failed task(s) will be queued again" in out and "Retry these 1 task(s)?" in out
    assert states(store_url) == {"mail-1": JobState.FAILED}
    # When it is accepted, Then it is retried
    code, out, _ = run("retry", "--failed", "--url", store_url, stdin="y\n")
    assert code == 0 and "queued 1 task(s) again" in out
    assert states(store_url) == {"mail-1": JobState.QUEUED}


def test_ids_and_failed_together_or_neither_are_refused(store_url: str) -> None:
    # Given a failed task
    write(store_url, [("mail-1", "default", MAIL, True)])
    # When both ids and --failed are given, or neither, or --queue without --failed
    refused = {
        "not both": ["mail-1", "--failed", "--yes"],
        "give task ids, or --failed": [],
        "--queue and --function go with --failed": ["mail-1", "--queue", "default"],
    }
    for message, args in refused.items():
        code, out, err = run("retry", *args, "--url", store_url)
        # Then the command refuses with a usage error that says why, changing nothing
        assert code == 2, out + err
        assert message in err
    assert states(store_url) == {"mail-1": JobState.FAILED}
