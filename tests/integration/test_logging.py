"""afterward's log lines show, with their time and level, under plain uvicorn and under
`afterward worker`, and follow the app's logging when it has any (issue 18).

Real processes: `uvicorn integration.logging_app:app` (its default logging, which covers
only uvicorn's own loggers) and `afterward worker` run a task that logs and succeeds and
one that logs and fails; their output holds afterward's lines with time and level, once.
In-process, pytest's caplog still receives afterward's records.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import pytest

from afterward import Afterward

from .procs import env_for, free_port, stop, wait_until

STAMP = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} "
SUCCEEDED = re.compile(
    STAMP + r"INFO afterward\.worker task \S+ \(integration\.logging_app:greet\) succeeded",
    re.M,
)
FAILED = re.compile(
    STAMP + r"ERROR afterward\.worker task \S+ \(integration\.logging_app:flaky\) "
    r"attempt 1/2 will retry: RuntimeError: flaky task fails for ada$",
    re.M,
)
FAILED_FOR_GOOD = re.compile(
    STAMP + r"ERROR afterward\.worker task \S+ \(integration\.logging_app:flaky\) "
    r"attempt 2/2 failed for good: RuntimeError: flaky task fails for ada$",
    re.M,
)


@contextmanager
def running(
    command: list[str], folder: Path, url: str, log: Path, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=folder,
            env={**env_for(folder, url), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        stop(proc)


def uvicorn(port: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "integration.logging_app:app", "--port", str(port)]


def serve_and_request(port: int, log: Path) -> None:
    def answers() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(answers, 20, f"uvicorn to answer ({log.read_text()})")
    assert httpx.post(f"http://127.0.0.1:{port}/run/ada", timeout=5).status_code == 200


def wait_for_lines(log: Path, *patterns: re.Pattern[str]) -> str:
    wait_until(lambda: all(p.search(log.read_text()) for p in patterns), 20, f"lines in {log}")
    return log.read_text()


@pytest.mark.slow
def test_afterward_s_lines_show_under_plain_uvicorn(tmp_path: Path) -> None:
    # Given the app under plain uvicorn (its default logging), tasks run in its process
    url, log, port = f"sqlite:///{tmp_path / 'tasks.db'}", tmp_path / "uvicorn.log", free_port()
    with running(uvicorn(port), tmp_path, url, log):
        # When a request stores a task that succeeds and one that fails
        serve_and_request(port, log)
        # Then afterward's INFO and ERROR lines show, with their time and level, once each
        output = wait_for_lines(log, SUCCEEDED, FAILED, FAILED_FOR_GOOD)
    print(output)
    for line in (SUCCEEDED, FAILED, FAILED_FOR_GOOD):
        assert len(line.findall(output)) == 1, output
    assert "Traceback (most recent call last)" in output  # the failed-for-good line's


@pytest.mark.slow
def test_afterward_s_lines_show_under_afterward_worker(tmp_path: Path) -> None:
    # Given the app under uvicorn, storing its tasks for workers, and a worker
    url, port = f"sqlite:///{tmp_path / 'tasks.db'}", free_port()
    web_log, worker_log = tmp_path / "uvicorn.log", tmp_path / "worker.log"
    worker = [sys.executable, "-m", "afterward", "worker", "integration.logging_app:app"]
    with (
        running(uvicorn(port), tmp_path, url, web_log, AFTERWARD_EXECUTION="workers"),
        running(worker, tmp_path, url, worker_log),
    ):
        # When a request stores a task that succeeds and one that fails
        serve_and_request(port, web_log)
        # Then the worker shows afterward's lines and the tasks' own, with time and level
        output = wait_for_lines(worker_log, SUCCEEDED, FAILED, FAILED_FOR_GOOD)
    print(output)
    for line in (SUCCEEDED, FAILED, FAILED_FOR_GOOD):
        assert len(line.findall(output)) == 1, output
    assert re.search(STAMP + r"INFO afterward\.worker worker \S+ ready", output, re.M)
    assert re.search(STAMP + r"WARNING logging_app greeting ada$", output, re.M)


SCRIPT = """
import logging, sys
from afterward import Afterward
{before}
Afterward(url="sqlite:///{folder}/x.db")
{after}
logging.getLogger("afterward.worker").info("an info line")
logging.getLogger("afterward.store").warning("a warning line")
"""


@pytest.mark.parametrize(
    ("before", "after", "env", "expected"),
    [
        # nothing configured: afterward prints INFO and up, with time and level
        ("", "", {}, [STAMP + "INFO afterward.worker an info line$", "WARNING afterward.store"]),
        # AFTERWARD_LOG_LEVEL chooses the level
        ("", "", {"AFTERWARD_LOG_LEVEL": "warning"}, [STAMP + "WARNING afterward.store a"]),
        # the app configured logging first: its format, its level (the root's), once
        (
            "logging.basicConfig(format='APP %(levelname)s %(message)s')",
            "",
            {},
            ["^APP WARNING a warning line$"],
        ),
        # the app configured logging after: its handler, once (afterward's stands aside)
        (
            "",
            "logging.basicConfig(format='APP %(levelname)s %(message)s')",
            {},
            ["^APP INFO an info line$", "^APP WARNING a warning line$"],
        ),
        # the app takes afterward's lines over with a handler of its own
        (
            "",
            "h = logging.StreamHandler(sys.stdout); "
            "h.setFormatter(logging.Formatter('MINE %(message)s')); "
            "logging.getLogger('afterward').addHandler(h)",
            {},
            ["^MINE an info line$", "^MINE a warning line$"],
        ),
    ],
    ids=["default", "env-level", "app-first", "app-after", "app-handler"],
)
def test_the_default_handler_stands_aside_for_the_app_s_logging(
    tmp_path: Path, before: str, after: str, env: dict[str, str], expected: list[str]
) -> None:
    # Given a process that creates an Afterward, configuring logging or not, When it logs
    script = SCRIPT.format(before=before, after=after, folder=tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**env_for(tmp_path, ""), **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    output = done.stdout + done.stderr
    # Then the lines expected show, and each line once
    assert done.returncode == 0, output
    lines = output.splitlines()
    assert len(lines) == len(expected), output
    for pattern in expected:
        assert re.search(pattern, output, re.M), (pattern, output)


def test_caplog_still_receives_afterward_s_records(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # Given an Afterward created under pytest (whose handlers are on the root logger)
    Afterward(url=f"sqlite:///{tmp_path / 'x.db'}")
    # When afterward logs
    with caplog.at_level(logging.INFO):
        logging.getLogger("afterward.worker").warning("seen by caplog")
    # Then caplog has the record, and nothing else printed it
    assert [r.getMessage() for r in caplog.records] == ["seen by caplog"]
    assert "seen by caplog" not in capfd.readouterr().err
