"""The `afterward` command on stores holding hostile text, on every store.

Anyone who can enqueue a task (or write a row) decides its id, function name, queue,
arguments and, through the exception it raises, its error and traceback. The command shows
all of them as stored: never read as Rich markup, control characters visible, huge values
cut, times out of range shown as numbers, and arguments marked secret hidden.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import sqlite3
import sys
import time

import pytest
from typer.testing import CliRunner

from afterward.cli import app as cli
from afterward.cli._common import format_time
from afterward.jobs import Failure, NewJob
from afterward.options import StoredOptions
from afterward.stores import store_from_url

runner = CliRunner()

MARKUP = "[/] [link=http://x]click[/link] [black on black]hidden[/] [bold]loud"
"""Rich markup: `[/]` alone made Rich raise MarkupError for the whole listing."""
ESC = "\x1b[2J\x1b[31m"
"""Clear the screen, then red: an ANSI CSI sequence."""
OSC = "\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\"
"""A terminal hyperlink (OSC 8) to a place of the writer's choosing."""
BIDI = "abc\u202edcb"
"""A right-to-left override: text that reads other than it is."""
HOSTILE = f"{MARKUP} {ESC} {OSC} {BIDI} \x07\x9b\x7f\u200b"
MIB = 1024 * 1024

_ids = itertools.count()


def invoke(*args: str) -> str:
    """The command's output (wide enough that no value of these tests is folded)."""
    result = runner.invoke(cli, list(args), env={"COLUMNS": "2000"})
    assert result.exit_code == 0, result.output
    return result.output


def assert_shown_as_data(output: str) -> None:
    """The hostile text reached the terminal as text: markup literal, controls visible."""
    assert "[/]" in output
    assert "[link=http://x]" in output and "[black on black]" in output
    for raw in ("\x1b", "\x07", "\x9b", "\x7f", "\u202e", "\u200b"):
        assert raw not in output
    assert "\\x1b[2J" in output and "\\x1b]8;;http://evil" in output
    assert "\\u202e" in output


def put(
    url: str,
    *,
    id: str | None = None,
    function: str = "app.tasks:send",
    queue: str = "default",
    payload: str | None = None,
    options: dict[str, object] | None = None,
    error: str | None = None,
    traceback: str = "Traceback (most recent call last):\nValueError: boom\n",
    worker: str = "w1",
    now: float | None = None,
) -> str:
    """Store one task as a hostile writer could, and fail its only attempt with `error`."""
    task_id = id or f"task-{next(_ids):05d}"
    when = time.time() if now is None else now

    async def write() -> None:
        store = store_from_url(url)
        await store.open()
        try:
            job = NewJob(
                id=task_id,
                function=function,
                payload=payload or json.dumps({"args": [], "kwargs": {}}),
                queue=queue,
                max_attempts=1,
                options=StoredOptions({"max_attempts": 1, **(options or {})}),
            )
            await store.enqueue([job], now=when)
            if error is not None:
                (taken,) = await store.acquire(worker, now=when, lease=30, limit=1, ids=[task_id])
                failure = Failure(error=error, traceback=traceback, retry_at=None)
                assert await store.fail(task_id, worker, taken.attempts, failure, now=when)
        finally:
            await store.close()

    asyncio.run(write())
    return task_id


def test_ls_shows_markup_and_control_characters_as_stored(store_url: str) -> None:
    # Given a task whose function, queue, arguments and error are hostile text
    put(
        store_url,
        function=f"app.tasks:send{ESC}",
        queue=f"q{MARKUP}",
        payload=json.dumps({"args": [HOSTILE], "kwargs": {}}, ensure_ascii=False),
        error=f"ValueError: {HOSTILE}",
    )
    # When the tasks are listed, Then the command succeeds and shows the text as stored
    output = invoke("ls", "--url", store_url)
    assert_shown_as_data(output)
    assert "[bold]loud" in output


def test_show_shows_arguments_errors_and_tracebacks_as_stored(store_url: str) -> None:
    # Given a task whose id, arguments, error, worker and traceback are hostile text
    trace = (
        "Traceback (most recent call last):\n"
        '  File "app.py", line 3, in load\n'
        "    value = config[section]\n"
        f"KeyError: {HOSTILE}\n"
    )
    task_id = put(
        store_url,
        id="task-[/]-[bold]",
        payload=json.dumps({"args": [HOSTILE], "kwargs": {"note": MARKUP}}, ensure_ascii=False),
        error=f"KeyError: {HOSTILE}",
        traceback=trace,
        worker=f"host{OSC}:1",
    )
    # When it is shown
    output = invoke("show", task_id, "--url", store_url)
    # Then every part reads as stored, the traceback's own brackets included
    assert_shown_as_data(output)
    assert "task-[/]-[bold]" in output
    assert "value = config[section]" in output
    assert "Traceback (most recent call last)" in output


def test_huge_values_are_cut_in_ls_and_capped_in_show(store_url: str) -> None:
    # Given a task with a 1 MiB argument and a 1 MiB error and traceback
    huge = "x" * MIB
    task_id = put(
        store_url,
        payload=json.dumps({"args": [huge], "kwargs": {}}),
        error=f"ValueError: {huge}",
        traceback=f"Traceback (most recent call last):\nValueError: {huge}\n",
    )
    # When it is listed and shown
    started = time.perf_counter()
    listing = invoke("ls", "--url", store_url)
    shown = invoke("show", task_id, "--url", store_url)
    elapsed = time.perf_counter() - started
    # Then both answer promptly; the listing cuts the error to a short cell and says so
    assert elapsed < 30
    assert len(listing) < 10_000
    assert f"({MIB + len('ValueError: '):,} characters)" in listing
    # and show prints at most 64 KiB of each value, saying how long it was
    assert len(shown) < 1_000_000
    assert f"({len(json.dumps({'args': [huge], 'kwargs': {}})):,} characters)" in shown


def test_show_hides_arguments_marked_secret(store_url: str) -> None:
    # Given a task whose options mark its second positional argument and `token` secret
    payload = {"args": ["alice", "hunter2"], "kwargs": {"token": "s3cr3t", "n": 1}}
    task_id = put(store_url, payload=json.dumps(payload), options={"redact": [1, "token"]})
    # When it is shown
    output = invoke("show", task_id, "--url", store_url)
    # Then the secret values are not shown, the others are
    assert "hunter2" not in output and "s3cr3t" not in output
    assert "alice" in output and "[redacted]" in output


def test_times_out_of_range_are_shown_as_numbers(store_url: str) -> None:
    # Given a task stored with a creation time far past the year 9999
    task_id = put(store_url, now=1e18, error="ValueError: late")
    # When it is listed and shown, Then the time is shown as the stored number
    assert "1e+18 (out of range)" in invoke("ls", "--url", store_url)
    assert "1e+18 (out of range)" in invoke("show", task_id, "--url", store_url)


@pytest.mark.parametrize(
    "timestamp", [math.nan, math.inf, -math.inf, -1e300, 1e18, sys.float_info.max]
)
def test_format_time_shows_times_out_of_range_as_numbers(timestamp: float) -> None:
    # Given a stored time no calendar date matches, Then it is shown as its number
    assert format_time(timestamp) == f"{timestamp!r} (out of range)"
    # while a time in range reads as a local date and time, and none as "-"
    assert len(format_time(1_800_000_000.0)) == len("2027-01-15 08:00:00")
    assert format_time(None) == "-"


def _set_state(url: str, task_id: str, state: str) -> None:
    """Write a state no afterward ever writes, straight into the row (SQLite or Redis)."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("UPDATE afterward_jobs SET state = ? WHERE id = ?", (state, task_id))
        return
    import redis

    base, _, query = url.partition("?")
    prefix = dict(p.split("=", 1) for p in query.split("&"))["prefix"]
    client = redis.Redis.from_url(base)
    client.hset(f"{prefix}:job:{task_id}", "state", state)
    client.hincrby(f"{prefix}:counts", "queued:default", -1)
    client.hincrby(f"{prefix}:counts", f"{state}:default", 1)
    client.close()


@pytest.mark.parametrize("command", ["status", "ls", "show"])
def test_a_bogus_state_is_reported_not_a_traceback(store_url: str, command: str) -> None:
    # Given a row in a state no afterward writes (PostgreSQL's CHECK refuses one)
    if store_url.startswith("postgres"):
        pytest.skip("PostgreSQL refuses a state outside its CHECK constraint")
    task_id = put(store_url)
    _set_state(store_url, task_id, "bogus[/]\x1b[2J")
    # When the command reads it
    args = [command, task_id] if command == "show" else [command]
    result = runner.invoke(cli, [*args, "--url", store_url], env={"COLUMNS": "2000"})
    # Then it answers (the store decides what such a row reads as), or says in one line
    # that it cannot read it, the state as stored: never a traceback, nor raw escapes
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and "\x1b" not in result.output
    if result.exit_code == 1:
        last = result.output.splitlines()[-1]  # after any warning the store logged
        assert last.startswith("error: ") and "bogus[/]\\x1b[2J" in last


def test_purge_refuses_non_finite_and_negative_ages(store_url: str) -> None:
    # Given a finished task
    put(store_url, error="ValueError: done")
    for age in ("nan", "nand", "inf", "-inf", "-1s", "1e400d"):
        # When purge is asked for an age that is not a finite duration
        result = runner.invoke(
            cli, ["purge", "--state", "failed", "--older-than", age, "--yes", "--url", store_url]
        )
        # Then it refuses, naming the value, and deletes nothing
        assert result.exit_code == 2, (age, result.output)
        assert "duration" in result.output
    assert "purged 1 task(s)" in invoke(
        "purge", "--state", "failed", "--older-than", "0s", "--yes", "--url", store_url
    )


def test_error_messages_keep_brackets_and_hide_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a URL of an unknown scheme with a password and brackets
    result = runner.invoke(cli, ["status", "--url", "mysql://ann:hunter2@db/[/]app"])
    # Then the error shows the URL as given, less its password
    assert result.exit_code == 1
    assert "hunter2" not in result.output
    assert "mysql://ann:***@db/[/]app" in result.output
    # Given the PostgreSQL extra missing, Then the message names the extra to install
    monkeypatch.setitem(sys.modules, "afterward.stores.postgres", None)
    result = runner.invoke(cli, ["status", "--url", "postgresql://ann:hunter2@db/app"])
    assert result.exit_code == 1
    assert "pip install 'afterward[postgres]'" in result.output


def test_ids_and_targets_typed_by_the_operator_are_shown_as_typed(store_url: str) -> None:
    # Given a store (the commands never create one) with another task
    put(store_url)
    # and ids and a worker target holding markup and an escape sequence
    for args in (
        ["show", "[/]\x1b[2J", "--url", store_url],
        ["retry", "[/]\x1b[2J", "--url", store_url],
        ["cancel", "[/]\x1b[2J", "--url", store_url],
        ["worker", "no_such_module_[/]\x1b[2J:app", "--log-level", "ERROR"],
    ):
        # When the command fails on them
        result = runner.invoke(cli, args, env={"COLUMNS": "2000"})
        # Then it says so in one error line that shows them as typed
        assert result.exit_code == 1, (args, result.output)
        assert isinstance(result.exception, SystemExit), (args, result.exception)
        assert "[/]" in result.output and "\x1b" not in result.output
