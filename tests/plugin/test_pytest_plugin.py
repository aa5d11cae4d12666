"""The pytest plugin, run as an application's test suite runs it: a tiny FastAPI app and
its tests in a temporary folder, under a pytest of their own (a subprocess, so the entry
point is found as it is in an installed application's environment)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

APP = """
from fastapi import FastAPI

from afterward import Afterward
from afterward.fastapi import BackgroundTasks

afterward = Afterward()  # at import time, from conftest.py: before any test runs
app = FastAPI()
afterward.install(app)


def fail(order_id: int) -> None:
    raise RuntimeError(f"the task for order {order_id} failed")


@app.post("/fails")
def fails(background_tasks: BackgroundTasks) -> dict[str, bool]:
    background_tasks.add_task(fail, 7)
    return {"ok": True}


@app.post("/lambda")
def with_lambda(background_tasks: BackgroundTasks) -> dict[str, bool]:
    background_tasks.add_task(lambda: None)  # LAMBDA
    return {"ok": True}
"""

CONFTEST = """
import app  # noqa: F401  (the app, and its Afterward, made before the session starts)
"""

TESTS = """
import os
from pathlib import Path

from fastapi.testclient import TestClient

import app
from afterward.testing import not_durable_calls


def test_store() -> None:
    Path("seen_url.txt").write_text(app.afterward.settings.url)
    assert app.afterward.settings.url == os.environ["AFTERWARD_URL"]


def test_failing_task() -> None:
    with TestClient(app.app) as client:
        assert client.post("/fails").status_code == 200


def test_lambda() -> None:
    with TestClient(app.app) as client:
        assert client.post("/lambda").status_code == 200
    sites = [f"{Path(s.file).name}:{s.line}" for s in not_durable_calls()]
    Path("not_durable.txt").write_text(" ".join(sites))
"""


@pytest.fixture
def app_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """The app, its conftest.py and its tests, with warnings as errors."""
    pytester.makepyfile(app=APP, conftest=CONFTEST, test_app=TESTS)
    pytester.makeini(
        "[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n"
    )
    return pytester


INI = "afterward_raise_task_errors"


def run(suite: pytest.Pytester, *args: str) -> pytest.RunResult:
    return suite.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


def lambda_line(suite: pytest.Pytester) -> int:
    source = (suite.path / "app.py").read_text().splitlines()
    return next(n for n, line in enumerate(source, 1) if "# LAMBDA" in line)


def test_each_session_stores_its_tasks_in_a_temporary_file_of_its_own(
    app_suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a store the plugin chose for a parent session, inherited as an xdist worker
    # (or this subprocess) inherits it
    parent = "sqlite:///" + str(app_suite.path / "parent" / "afterward.db")
    monkeypatch.setenv("AFTERWARD_URL", parent)
    monkeypatch.setenv("AFTERWARD_PYTEST_URL", parent)
    # When the app's suite runs
    result = run(app_suite)
    # Then it passed, and the Afterward made at import time (from conftest.py) used a
    # SQLite file of its own in a temporary folder, removed when the run ended
    result.assert_outcomes(passed=3)
    url = (app_suite.path / "seen_url.txt").read_text()
    assert url.startswith("sqlite:///") and url.endswith("/afterward.db") and url != parent
    folder = Path(url.removeprefix("sqlite:///")).parent
    assert not folder.is_relative_to(app_suite.path)
    assert not folder.exists()
    # And nothing was written to the working directory
    assert not list(app_suite.path.rglob("afterward.db*"))


def test_afterward_url_when_set_is_used(
    app_suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given AFTERWARD_URL set by the user
    url = f"sqlite:///{tmp_path / 'mine.db'}"
    monkeypatch.setenv("AFTERWARD_URL", url)
    # When the app's suite runs
    result = run(app_suite)
    # Then the app stored its tasks there
    result.assert_outcomes(passed=3)
    assert (app_suite.path / "seen_url.txt").read_text() == url
    assert (tmp_path / "mine.db").exists()


def test_by_default_a_failing_task_does_not_fail_the_test(app_suite: pytest.Pytester) -> None:
    # Given an endpoint whose task raises
    # When the suite runs without the option
    result = run(app_suite, "-k", "failing_task")
    # Then the test passes: the task is retried, as in production
    result.assert_outcomes(passed=1, deselected=2)
    # And the summary says nothing of afterward: the task was stored
    assert "would not be durable" not in result.stdout.str()


@pytest.mark.parametrize("how", [["--afterward-raise-task-errors"], ["-o", f"{INI}=true"]])
def test_the_raise_option_raises_a_failing_task_through_testclient(
    app_suite: pytest.Pytester, how: list[str]
) -> None:
    # Given an endpoint whose task raises
    # When the suite runs with the option (on the command line, or as an ini setting)
    result = run(app_suite, "-k", "failing_task", *how)
    # Then the test fails with the task's own exception, raised through TestClient
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(["*RuntimeError: the task for order 7 failed*"])


def test_the_summary_lists_call_sites_that_would_not_be_durable(
    app_suite: pytest.Pytester,
) -> None:
    # Given an endpoint that passes a lambda to add_task
    # When its test runs
    result = run(app_suite, "-k", "lambda")
    # Then the terminal summary names the call site, file:line, and why
    result.assert_outcomes(passed=1, deselected=2)
    line = lambda_line(app_suite)
    result.stdout.re_match_lines(
        [
            r"afterward: 1 add_task call site would not be durable .*AFTERWARD_STRICT=1.*",
            rf"  app\.py:{line}: .*lambda.*",
        ]
    )
    # And afterward.testing.not_durable_calls() returned it
    assert (app_suite.path / "not_durable.txt").read_text() == f"app.py:{line}"
