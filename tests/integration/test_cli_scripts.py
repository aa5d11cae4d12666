"""The `afterward` command for scripts and narrow terminals, on every store: --json, one
line per task at 80 columns, unique id prefixes, --version, purge's count, and read-only
commands that never create a store."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path

import psycopg
import pytest
import redis
from servers import POSTGRES_URL, REDIS_URL
from stores._helpers import complete
from typer.testing import CliRunner

from afterward import __version__
from afterward.cli import app as cli
from afterward.jobs import Failure, JobState, NewJob
from afterward.options import StoredOptions
from afterward.stores import JobFilter, store_from_url

runner = CliRunner()

SECRET = "hunter2"


def run(*args: str, columns: int = 200, stdin: str | None = None) -> tuple[int, str, str]:
    """Exit code, standard output and standard error of the command."""
    result = runner.invoke(cli, list(args), env={"COLUMNS": str(columns)}, input=stdin)
    return result.exit_code, result.stdout, result.stderr


def ok(*args: str, columns: int = 200) -> str:
    code, out, err = run(*args, columns=columns)
    assert code == 0, out + err
    return out


def fill(url: str, ids: list[str], *, fail: str | None = None, finished_at: float = 0) -> None:
    """Store tasks with these ids in `url`: queued, the `fail` one failed (its arguments
    hold a secret), all of them succeeded at `finished_at` when it is given."""

    async def write() -> None:
        store = store_from_url(url)
        await store.open()
        now = (finished_at or time.time()) - 60
        try:
            for n, task_id in enumerate(ids):
                payload = json.dumps({"args": ["alice", SECRET], "kwargs": {"note": "é\x1b"}})
                job = NewJob(
                    id=task_id,
                    function="app.tasks:send",
                    payload=payload,
                    max_attempts=1,
                    options=StoredOptions({"max_attempts": 1, "redact": [1]}),
                )
                await store.enqueue([job], now=now + n)
            for task_id in ids if finished_at else [fail] if fail else []:
                assert task_id is not None
                when = finished_at or now + len(ids)
                (taken,) = await store.acquire("w1", now=when, lease=30, limit=1, ids=[task_id])
                if finished_at:
                    assert await complete(store, task_id, "w1", taken.attempts, now=when)
                else:
                    failure = Failure(error="ValueError: boom", traceback="Trace\n", retry_at=None)
                    assert await store.fail(task_id, "w1", taken.attempts, failure, now=when)
        finally:
            await store.close()

    asyncio.run(write())


def states(url: str) -> dict[str, JobState]:
    async def read() -> dict[str, JobState]:
        store = store_from_url(url)
        await store.open()
        try:
            return {j.id: j.state for j in await store.list(JobFilter())}
        finally:
            await store.close()

    return asyncio.run(read())


IDS = [f"18ee91f91c{n:02d}4940e7b5a6b80d4963f1" for n in range(3)]
"""Three 32-character ids that share their first 10 characters, as ids made in the same
second do."""


def test_json_of_status_ls_and_show_parses(store_url: str) -> None:
    # Given three tasks, one failed, whose arguments hold a secret and stored text
    fill(store_url, IDS, fail=IDS[0])
    # When status, ls and show are asked for JSON
    status = json.loads(ok("status", "--json", "--url", store_url))
    listing = json.loads(ok("ls", "--json", "--url", store_url))
    shown_text = ok("show", IDS[0], "--json", "--url", store_url)
    shown = json.loads(shown_text)
    # Then each prints one JSON document with the counts, the tasks and the task
    assert status["queues"] == {
        "default": {s.value: {"queued": 2, "failed": 1}.get(s.value, 0) for s in JobState}
    }
    assert status["total"]["queued"] == 2
    assert [t["id"] for t in listing["tasks"]] == IDS[::-1]
    assert {t["state"] for t in listing["tasks"]} == {"queued", "failed"}
    assert shown["id"] == IDS[0] and shown["state"] == "failed"
    assert shown["last_error"] == "ValueError: boom"
    (attempt,) = shown["history"]
    assert attempt["outcome"] == "failed" and attempt["traceback"] == "Trace\n"
    # with times as ISO 8601 in UTC and as seconds, which agree
    created = dt.datetime.fromisoformat(shown["created_at"])
    assert created.utcoffset() == dt.timedelta(0)
    assert created.timestamp() == pytest.approx(shown["created_at_epoch"], abs=1e-6)
    assert shown["finished_at_epoch"] >= shown["created_at_epoch"]
    assert shown["lease_expires_at"] is None
    # the secret redacted, stored text escaped as JSON (the output is ASCII)
    assert SECRET not in shown_text and SECRET not in json.dumps(listing)
    assert json.loads(shown["arguments"]) == {
        "args": ["alice", "[redacted]"],
        "kwargs": {"note": "é\x1b"},
    }
    assert shown_text.isascii() and "\x1b" not in shown_text


def test_ls_prints_one_line_per_task_at_80_columns(store_url: str) -> None:
    # Given three tasks with 32-character ids, one failed with an error
    fill(store_url, IDS, fail=IDS[0])
    # When they are listed at 80 columns (as when piped)
    output = ok("ls", "--url", store_url, columns=80)
    # Then each task is one line that holds its whole id, none wider than 80 columns
    lines = output.splitlines()
    with_ids = [line for line in lines if any(part in line for part in ("18ee9", "963f1"))]
    assert [line.split()[0] for line in with_ids] == IDS[::-1]
    assert max(len(line) for line in lines) <= 80


def test_a_unique_prefix_selects_a_task_and_an_ambiguous_one_lists_them(store_url: str) -> None:
    # Given three tasks whose ids share their first ten characters, one failed
    fill(store_url, IDS, fail=IDS[0])
    # When a unique start of an id is shown, retried or cancelled
    # Then it selects that task
    assert json.loads(ok("show", IDS[0][:12], "--json", "--url", store_url))["id"] == IDS[0]
    assert IDS[0] in ok("retry", IDS[0][:12], "--url", store_url)
    assert IDS[1] in ok("cancel", IDS[1][:12], "--url", store_url)
    assert states(store_url) == {
        IDS[0]: JobState.QUEUED,
        IDS[1]: JobState.CANCELLED,
        IDS[2]: JobState.QUEUED,
    }
    # When a start several ids share is given, Then it fails naming them, changing nothing
    code, _, err = run("cancel", IDS[0][:10], "--url", store_url)
    assert code == 1
    assert "several tasks" in err and all(i in err for i in IDS)
    assert states(store_url)[IDS[2]] is JobState.QUEUED
    # When a start no id has is given, Then it fails saying no task has it
    code, _, err = run("show", "18ee91f91d", "--url", store_url)
    assert code == 1 and "No task by the id of '18ee91f91d'" in err


def _created(url: str, tmp_path: Path) -> list[str]:
    """What exists at `url`: files under `tmp_path`, a PostgreSQL schema, Redis keys."""
    if url.startswith("sqlite"):
        return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    name = url.partition("?")[2].partition("=")[2]
    if url.startswith("postgres"):
        with psycopg.connect(POSTGRES_URL) as conn:
            query = "SELECT nspname FROM pg_namespace WHERE nspname = %s"
            return [r[0] for r in conn.execute(query, (name,))]
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return sorted(str(k) for k in client.scan_iter(match=f"{name}:*"))
    finally:
        client.close()


@pytest.mark.parametrize("command", ["status", "ls", "show", "retry", "cancel", "purge"])
def test_commands_on_a_missing_store_fail_and_create_nothing(
    store_url: str, tmp_path: Path, command: str
) -> None:
    # Given a URL where no store exists (for SQLite, in a folder that does not exist)
    if store_url.startswith("sqlite"):
        store_url = f"sqlite:///{tmp_path / 'nodir' / 'x.db'}"
    args = {"show": ["show", "abc"], "retry": ["retry", "abc"], "cancel": ["cancel", "abc"]}
    # When a command that reads or changes tasks is run on it
    code, out, err = run(*args.get(command, [command]), "--url", store_url)
    # Then it fails, saying which URL it tried and how to give another, and creates nothing
    assert code == 1, out + err
    assert "no afterward store at" in err
    assert "--url" in err and "AFTERWARD_URL" in err
    assert store_url.partition("?")[0].rpartition("/")[2] in err
    assert _created(store_url, tmp_path) == []


def test_the_default_store_is_not_created_either(workdir: Path) -> None:
    # Given an empty folder and no AFTERWARD_URL, When status is run there
    code, _, err = run("status")
    # Then it fails naming the default URL, and no afterward.db appears
    assert code == 1
    assert "sqlite:///afterward.db (the default)" in err
    assert list(workdir.iterdir()) == []


def test_version() -> None:
    # When afterward --version is run, Then it prints the package's version
    assert ok("--version") == f"afterward {__version__}\n"


def test_purge_says_how_many_it_will_delete_before_asking(store_url: str) -> None:
    # Given three tasks that succeeded an hour ago and one still queued
    fill(store_url, IDS, finished_at=time.time() - 3600)
    fill(store_url, ["still-queued"])
    # When purge is declined, Then it said how many it would delete and deleted none
    code, out, _ = run("purge", "--older-than", "1m", "--url", store_url, stdin="n\n")
    assert code == 1
    assert "3 succeeded, cancelled task(s) finished more than 1m ago will be deleted" in out
    assert "Delete these 3 task(s)?" in out
    assert len(states(store_url)) == 4
    # When it is accepted, Then those three are deleted
    code, out, _ = run("purge", "--older-than", "1m", "--url", store_url, stdin="y\n")
    assert code == 0 and "purged 3 task(s)" in out
    assert states(store_url) == {"still-queued": JobState.QUEUED}
    # And with nothing to delete it says so without asking
    assert "nothing to purge" in ok("purge", "--url", store_url)
