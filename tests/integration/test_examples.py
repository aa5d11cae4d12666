"""The examples in examples/: each runs and does what its docstring says.

In-process apps are imported afresh for every test (so module-level state such as the
lessons' LOG lists starts empty and every app gets a new `Afterward`), from a temporary
working directory, since zero-config apps put ``afterward.db`` there.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Protocol, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from afterward import Afterward, Job, JobState
from afterward.stores import JobFilter, store_from_url

from .procs import stop, wait_until

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

LoadExample = Callable[[str], ModuleType]


@pytest.fixture
def load_example(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoadExample]:
    """Import ``examples.<name>`` afresh; its app's Afterward is stopped and closed after."""
    monkeypatch.syspath_prepend(str(REPO))
    loaded: list[ModuleType] = []

    def load(name: str) -> ModuleType:
        sys.modules.pop(f"examples.{name}", None)
        module = importlib.import_module(f"examples.{name}")
        loaded.append(module)
        return module

    yield load
    for module in loaded:
        asyncio.run(Afterward.of(module.app).aclose())


def jobs_in(url: str) -> list[Job]:
    """Every task the store at `url` holds, with its attempts, oldest first."""

    async def read() -> list[Job]:
        store = store_from_url(url)
        await store.open()
        try:
            listed = await store.list(JobFilter(), limit=1000)
            return [await store.get(job.id) for job in sorted(listed, key=lambda j: j.id)]
        finally:
            await store.close()

    return asyncio.run(read())


def app_jobs(app: object) -> list[Job]:
    """Every task the store of `app`'s Afterward holds, oldest first."""
    return jobs_in(Afterward.of(app).settings.url)


def env_without_url(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AFTERWARD_URL"}
    env.update(extra)
    return env


# -- every example ----------------------------------------------------------------------

EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*.py") if p.name != "__init__.py")


def test_all_six_examples_are_there() -> None:
    # Given the examples folder, Then it holds exactly the examples these tests cover
    assert EXAMPLE_FILES == [
        "cleanup.py",
        "demo.py",
        "lesson_notify.py",
        "lesson_tasks.py",
        "pdf_report.py",
        "place_order.py",
    ]


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_every_example_says_what_it_shows_and_how_to_run_it(name: str) -> None:
    # Given an example's source
    doc = ast.get_docstring(ast.parse((EXAMPLES / name).read_text()))
    # Then its docstring explains it and gives the command that runs it
    assert doc and len(doc.splitlines()) >= 3, name
    module = name.removesuffix(".py")
    assert f"examples/{name}" in doc or f"examples.{module}:app" in doc, name


# -- the lesson, with only the import changed ---------------------------------------------

LESSON_NOTIFY_OUTPUT = """\
200
{'status': 'accepted', 'email': 'ada@example.com'}
['sent welcome email to ada@example.com']
"""

LESSON_TASKS_OUTPUT = """\
200
{'status': 'created', 'title': 'Ship release'}
["audit: created task 'Ship release'", 'email queued for ada@example.com']
"""


@pytest.mark.parametrize(
    ("script", "expected", "functions"),
    [
        ("lesson_notify.py", LESSON_NOTIFY_OUTPUT, ["__main__:write_log"]),
        (
            "lesson_tasks.py",
            LESSON_TASKS_OUTPUT,
            ["__main__:write_audit", "__main__:send_email"],
        ),
    ],
)
def test_lesson_script_prints_the_lessons_output(
    tmp_path: Path, script: str, expected: str, functions: list[str]
) -> None:
    # Given one of the lesson's examples, run as a script from an empty directory
    # When it runs its TestClient snippet
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=tmp_path,
        env=env_without_url(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Then it prints exactly what the lesson shows
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected
    # And the tasks were durable: stored in ./afterward.db, where they are now succeeded
    jobs = jobs_in(f"sqlite:///{tmp_path / 'afterward.db'}")
    assert [j.function for j in jobs] == functions
    assert [j.state for j in jobs] == [JobState.SUCCEEDED] * len(functions)


def test_lesson_tasks_module_runs_audit_before_email(load_example: LoadExample) -> None:
    # Given the lesson's second app, imported (LOG starts empty)
    lesson = load_example("lesson_tasks")
    assert lesson.LOG == []
    # When two tasks are created
    client = TestClient(lesson.app)
    client.post("/tasks?title=One")
    client.post("/tasks?title=Two")
    # Then each request's sync audit ran before its async email, requests in turn
    assert lesson.LOG == [
        "audit: created task 'One'",
        "email queued for ada@example.com",
        "audit: created task 'Two'",
        "email queued for ada@example.com",
    ]


# -- exercise 1: place an order -------------------------------------------------------------

ORDER = {"email": "ada@example.com", "card": "4242424242424242", "amount_cents": 1999}


def test_placed_order_audits_then_emails(load_example: LoadExample, workdir: Path) -> None:
    # Given the place-order app
    shop = load_example("place_order")
    client = TestClient(shop.app)
    # When an order is paid with a good card
    response = client.post("/orders", json=ORDER)
    # Then it is placed, with the charge made inline
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "placed"
    order_id, charge_id = body["order_id"], body["charge_id"]
    assert charge_id.startswith("ch_")
    # And both side-effects ran before the call returned
    assert (workdir / "audit.log").read_text() == f"order {order_id} placed, charge {charge_id}\n"
    assert (workdir / "outbox.txt").read_text() == (
        f"to ada@example.com: order {order_id} confirmed, 19.99 charged\n"
    )
    # And they ran as one chain, the email starting only after the audit had finished
    audit, email = app_jobs(shop.app)
    assert audit.function == "examples.place_order:write_audit"
    assert email.function == "examples.place_order:send_confirmation"
    assert audit.state == email.state == JobState.SUCCEEDED
    assert email.prev_id == audit.id
    assert audit.finished_at is not None
    assert email.history[0].started_at >= audit.finished_at


def test_declined_card_is_402_and_stores_no_task(load_example: LoadExample, workdir: Path) -> None:
    # Given the place-order app, which has already placed one order
    shop = load_example("place_order")
    client = TestClient(shop.app)
    assert client.post("/orders", json=ORDER).status_code == 200
    (workdir / "audit.log").unlink()
    (workdir / "outbox.txt").unlink()
    before = app_jobs(shop.app)
    # When the next order's card is declined
    response = client.post("/orders", json={**ORDER, "card": "4000000000000002"})
    # Then the caller hears it: 402 with the reason
    assert response.status_code == 402
    assert response.json() == {"detail": "card ending in 0002 was declined"}
    # And no task was stored for it, and nothing was written
    assert [j.id for j in app_jobs(shop.app)] == [j.id for j in before]
    assert len(before) == 2
    assert not (workdir / "audit.log").exists()
    assert not (workdir / "outbox.txt").exists()


# -- exercise 2: cleanup, then log ----------------------------------------------------------


def test_upload_is_removed_then_cleanup_is_logged(load_example: LoadExample, workdir: Path) -> None:
    # Given the upload app
    uploads = load_example("cleanup")
    client = TestClient(uploads.app)
    # When a file is uploaded
    response = client.post("/uploads?filename=notes.txt", content=b"one\ntwo\nthree\n")
    # Then the upload was processed from its temporary file
    assert response.status_code == 200
    body = response.json()
    assert body["lines"] == 3
    temp = Path(body["temp_path"])
    assert temp.name.startswith("upload-") and temp.name.endswith("-notes.txt")
    # And by the time the call returned, the file was gone and the log written after it
    assert not temp.exists()
    assert (workdir / "cleanup.log").read_text() == f"removed {temp}\ncleanup complete\n"
    remove, log = app_jobs(uploads.app)
    assert (remove.function, log.function) == (
        "examples.cleanup:remove_temp_file",
        "examples.cleanup:write_log",
    )
    assert log.prev_id == remove.id


# -- exercise 3: the report goes to a worker ------------------------------------------------

REPORT_FUNCTION = "examples.pdf_report:generate_and_email_report"


def start_worker(cwd: Path, url: str, queue: str) -> tuple[subprocess.Popen[bytes], Path]:
    """A real `afterward worker examples.pdf_report:app` process; its log goes to a file."""
    log = cwd / f"worker-{queue}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "afterward",
                "worker",
                "examples.pdf_report:app",
                "--queue",
                queue,
            ],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env_without_url(
                AFTERWARD_URL=url,
                PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            ),
        )
    wait_until(lambda: "ready" in log.read_text() or proc.poll() is not None, 30, "worker")
    assert proc.poll() is None, log.read_text()
    return proc, log


def test_report_is_only_enqueued_then_a_reports_worker_builds_it(
    load_example: LoadExample, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{workdir / 'tasks.db'}"
    monkeypatch.setenv("AFTERWARD_URL", url)
    # Given the report app (execution="workers"), served with its lifespan
    reports = load_example("pdf_report")
    with TestClient(reports.app) as client:
        # When a report is requested
        started = time.monotonic()
        response = client.post("/reports/q3?email=ada@example.com")
        answered_in = time.monotonic() - started
    # Then the answer came at once with the task's id
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    assert answered_in < 5
    # And the task is only stored, in the reports queue with its own options
    (job,) = jobs_in(url)
    assert (job.id, job.function, job.queue) == (task_id, REPORT_FUNCTION, "reports")
    assert (job.state, job.attempts) == (JobState.QUEUED, 0)
    assert (job.max_attempts, job.options["time_limit"]) == (3, 300)
    # And nothing ran in the web process
    assert not (workdir / "reports").exists()
    assert not (workdir / "outbox.txt").exists()

    # When a worker for the default queue runs for a while
    default_worker, default_log = start_worker(workdir, url, "default")
    try:
        assert "queues default" in default_log.read_text()
        time.sleep(2.0)  # four idle polls
        # Then it leaves the report alone
        (job,) = jobs_in(url)
        assert (job.state, job.attempts) == (JobState.QUEUED, 0)
        assert not (workdir / "outbox.txt").exists()
    finally:
        assert stop(default_worker) == 0, default_log.read_text()

    # When a worker for the reports queue starts
    reports_worker, reports_log = start_worker(workdir, url, "reports")
    try:
        # Then it builds the 200-page report and emails it
        outbox = workdir / "outbox.txt"
        wait_until(outbox.exists, 30, "the report to be emailed")
    finally:
        # And it stops cleanly on SIGTERM
        assert stop(reports_worker) == 0, reports_log.read_text()
    assert outbox.read_text() == (
        "to ada@example.com: report q3 (200 pages) attached: reports/q3.pdf\n"
    )
    pdf = (workdir / "reports" / "q3.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    assert pdf.count(b" page ") == 200 and b" page 200/200 " in pdf
    # And the store shows it ran once, in that worker process
    (job,) = jobs_in(url)
    assert (job.state, job.attempts) == (JobState.SUCCEEDED, 1)
    assert f"/{reports_worker.pid}/" in job.history[0].worker


def test_report_app_without_lifespan_still_only_enqueues(
    load_example: LoadExample, workdir: Path
) -> None:
    # Given the report app under a TestClient not used as a context manager (no lifespan)
    reports = load_example("pdf_report")
    client = TestClient(reports.app)
    # When a report is requested
    response = client.post("/reports/q4?email=ada@example.com")
    # Then it was still only enqueued, not run in the web process
    assert response.status_code == 202
    assert not (workdir / "outbox.txt").exists()
    assert [j.state for j in app_jobs(reports.app)] == [JobState.QUEUED]


# -- the demo -------------------------------------------------------------------------------


class Demo(Protocol):
    """What the demo's test reaches in examples/demo.py."""

    EMAIL_SECONDS: float
    app: FastAPI


def test_demo_lists_the_tasks_a_request_created(
    load_example: LoadExample, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the demo app, importable as examples.demo:app, with a quicker email
    demo = cast(Demo, load_example("demo"))
    demo.EMAIL_SECONDS = 0.05
    caplog.set_level(logging.INFO)
    with TestClient(demo.app) as client:
        # When a task is created
        created = client.post("/tasks?title=Ship release")
        # Then the listing shows its two tasks, succeeded, newest first
        listed = client.get("/tasks").json()
        page = client.get("/")
    assert created.status_code == 200
    body = created.json()
    assert (body["status"], body["title"]) == ("created", "Ship release")
    assert [(t["id"], t["function"], t["state"]) for t in listed] == [
        (body["tasks"][1], "send_email", "succeeded"),
        (body["tasks"][0], "write_audit", "succeeded"),
    ]
    # And the tasks are in afterward.db in the working directory
    assert [j.state for j in jobs_in("sqlite:///afterward.db")] == [JobState.SUCCEEDED] * 2
    # And the console shows them running
    messages = [r.getMessage() for r in caplog.records]
    assert "audit: created task 'Ship release'" in messages
    assert "email about 'Ship release' sent to ada@example.com" in messages
    assert any(m.startswith(f"task {body['tasks'][1]} ") and "succeeded" in m for m in messages)
    # And the page that watches them is served
    assert page.status_code == 200
    assert "afterward demo" in page.text and 'fetch("/tasks")' in page.text
