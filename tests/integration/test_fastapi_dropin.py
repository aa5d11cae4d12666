"""The drop-in: FastAPI's own examples and semantics, with only the import changed."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import patch

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from afterward import (
    Afterward,
    ArgumentNotSerializable,
    FunctionNotImportable,
    JobState,
    TaskRefused,
)
from afterward._fastapi_compat import FASTAPI_VERSION

from . import apps
from .stored import stored

MakeClient = Callable[..., TestClient]

_FASTAPI_RUNS_TEARDOWN_BEFORE_RESPONSE = (0, 106) <= FASTAPI_VERSION < (0, 118)


def test_tutorial001_writes_the_notification(make_client: MakeClient, workdir: Path) -> None:
    # Given FastAPI's tutorial 001 app
    client = make_client(apps.tutorial001())
    # When a notification is sent
    response = client.post("/send-notification/foo@example.com")
    # Then the response is FastAPI's, and the task ran before the call returned
    assert response.status_code == 200
    assert response.json() == {"message": "Notification sent in the background"}
    text = (workdir / "log.txt").read_text()
    assert text == "notification for foo@example.com: some notification"
    # And it was stored durably first, in afterward.db in the working directory
    assert (workdir / "afterward.db").exists()
    assert stored(client.app) == [JobState.SUCCEEDED]


def test_tutorial002_runs_dependency_tasks_first(make_client: MakeClient, workdir: Path) -> None:
    # Given FastAPI's tutorial 002 app, where a dependency adds a task too
    client = make_client(apps.tutorial002())
    # When a notification is sent with a query
    response = client.post("/send-notification/foo@example.com?q=some-query")
    # Then both tasks ran, the dependency's first, sharing the request's one task list
    assert response.status_code == 200
    assert response.json() == {"message": "Message sent"}
    assert (workdir / "log.txt").read_text() == (
        "found query: some-query\nmessage to foo@example.com\n"
    )
    assert stored(client.app) == [JobState.SUCCEEDED, JobState.SUCCEEDED]


def test_tutorials_work_without_with_and_with_with(make_client: MakeClient, workdir: Path) -> None:
    # Given tutorial 002 under a TestClient used as a context manager (lifespan runs)
    with make_client(apps.tutorial002()) as client:
        # When two requests are made
        client.post("/send-notification/a@example.com")
        client.post("/send-notification/b@example.com")
        # Then each call returned after its task was done
        assert (
            workdir / "log.txt"
        ).read_text() == "message to a@example.com\nmessage to b@example.com\n"


@pytest.mark.parametrize("path", ["/raises", "/http-error"])
def test_endpoint_that_raises_keeps_no_task(make_client: MakeClient, path: str) -> None:
    # Given an endpoint that adds a task and then raises
    client = make_client(apps.misbehaving(), raise_server_exceptions=False)
    # When it is called
    response = client.post(path)
    # Then the error reaches the client, and nothing was stored or run
    assert response.status_code in (409, 500)
    assert apps.EVENTS == []
    assert stored(client.app) == []


def test_a_lambda_runs_in_memory_by_default_and_is_refused_in_strict_mode(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an endpoint that adds a stored task, then a lambda
    client = make_client(apps.misbehaving())
    # When it is called, Then it answers, and both ran in order, the lambda in memory
    assert client.post("/lambda").json() == {"status": "lambda added"}
    assert apps.EVENTS == [("stored before the refusal",), ("lambda ran",)]
    assert stored(client.app) == [JobState.SUCCEEDED, JobState.SUCCEEDED]
    # Given strict mode from the environment (the same store file)
    monkeypatch.setenv("AFTERWARD_STRICT", "1")
    apps.EVENTS.clear()
    strict = make_client(apps.misbehaving())
    # When it is called, Then the refusal is raised inside the request, naming the call site
    with pytest.raises(FunctionNotImportable, match=r"apps\.py:\d+: .*module level"):
        strict.post("/lambda")
    # And not even the task added before it was kept
    assert len(stored(strict.app)) == 2
    assert apps.EVENTS == []


def test_an_argument_with_no_json_form_runs_in_memory_unchanged_or_is_refused_when_strict(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an endpoint that passes an object with no JSON form
    client = make_client(apps.misbehaving())
    # When it is called, Then the task got that very object, after the response
    assert client.post("/unserializable").status_code == 200
    ((received,),) = apps.EVENTS
    assert received is apps.UNSERIALIZABLE
    # And in strict mode the request fails inside, saying what to pass instead
    monkeypatch.setenv("AFTERWARD_STRICT", "1")
    strict = make_client(apps.misbehaving())
    with pytest.raises(ArgumentNotSerializable, match="JSON-friendly"):
        strict.post("/unserializable")
    assert len(stored(strict.app)) == 1  # the first request's stand-in only


async def test_concurrent_requests_keep_each_chain_in_order(workdir: Path) -> None:
    # Given an app whose requests add an async task then a sync task, each with jitter
    app = apps.chains()
    apps.EVENTS.clear()
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            # When 20 requests arrive at once
            responses = await asyncio.gather(*(client.post(f"/chain/{n}") for n in range(20)))
        # Then all answered, and for every request the first task ran before the second
        assert all(r.status_code == 200 for r in responses)
        assert len(apps.EVENTS) == 40
        for n in range(20):
            steps = [step for (req, step) in apps.EVENTS if req == str(n)]
            assert steps == ["first", "second"], (n, steps)
    finally:
        await Afterward.of(app).aclose()


def test_yield_dependency_can_add_tasks_before_yield(make_client: MakeClient) -> None:
    # Given a request-scoped `yield` dependency that adds a task before it yields
    client = make_client(apps.yield_dependency(add_after_yield=False))
    # When the endpoint runs
    assert client.post("/work").status_code == 200
    # Then the dependency's task ran first, then the endpoint's
    assert apps.EVENTS == [("opened",), ("worked",)]


def test_task_added_after_the_commit_is_refused_not_lost(make_client: MakeClient) -> None:
    # Given a `yield` dependency that adds a task after the endpoint returned
    client = make_client(apps.yield_dependency(add_after_yield=True))
    if _FASTAPI_RUNS_TEARDOWN_BEFORE_RESPONSE:
        # When the request runs on FastAPI 0.106-0.117, where that code runs before the
        # response, Then the task is stored and run with the others
        assert client.post("/work").status_code == 200
        assert apps.EVENTS == [("opened",), ("worked",), ("closed",)]
        return
    # When the request runs where that code runs after the response (FastAPI's own list
    # would drop the task silently), Then the late task is refused loudly
    with pytest.raises(TaskRefused, match="after this request's tasks were committed"):
        client.post("/work")
    # And the tasks added in time ran
    assert apps.EVENTS == [("opened",), ("worked",)]


def test_mounted_sub_app_uses_the_root_lifespans_afterward(
    make_client: MakeClient, workdir: Path
) -> None:
    # Given a root app with a configured workers-mode Afterward and a mounted sub-app
    app = apps.mounted(f"sqlite:///{workdir / 'configured.db'}")
    # When the sub-app's endpoint adds a task under a lifespan-running client
    with make_client(app) as client:
        task_id = client.post("/v1/go").json()["task"]
    # Then the task went to the configured store, queued for workers, not run in the app
    configured = Afterward(url=f"sqlite:///{workdir / 'configured.db'}")
    assert asyncio.run(configured.get(task_id)).state is JobState.QUEUED
    assert apps.EVENTS == []
    assert not (workdir / "afterward.db").exists()


def test_workers_mode_refuses_functions_of_a_main_script(workdir: Path) -> None:
    # Given a workers-mode Afterward and a function that claims to live in __main__
    afterward = Afterward(url=f"sqlite:///{workdir / 'w.db'}", execution="workers")

    def scripted() -> None: ...

    scripted.__module__, scripted.__qualname__ = "__main__", "scripted"
    sys.modules["__main__"].scripted = scripted  # type: ignore[attr-defined]
    try:
        # When it is prepared, Then it is refused: no worker could import it
        with pytest.raises(FunctionNotImportable, match="__main__"):
            afterward.prepare(scripted, (), {})
    finally:
        del sys.modules["__main__"].scripted


def test_arguments_that_do_not_fit_fail_the_task_or_are_refused_when_strict(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an endpoint passing a keyword its task function does not take
    client = make_client(apps.misbehaving())
    # When it is called, Then it answers, and the task fails after it, as with FastAPI
    assert client.post("/wrong-arguments").status_code == 200
    assert stored(client.app) == [JobState.FAILED]
    # And strict mode refuses it inside the request, naming the function and the argument
    monkeypatch.setenv("AFTERWARD_STRICT", "1")
    strict = make_client(apps.misbehaving())
    with pytest.raises(TaskRefused, match=r"write_log.*colour"):
        strict.post("/wrong-arguments")
    assert len(stored(strict.app)) == 1  # the first request's stand-in only


def test_raise_task_errors_raises_a_failed_task_through_the_client(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given AFTERWARD_RAISE_TASK_ERRORS, and an endpoint whose task will fail
    monkeypatch.setenv("AFTERWARD_RAISE_TASK_ERRORS", "1")
    client = make_client(apps.misbehaving())
    # When it is called, Then the task's own error reaches the test, as with FastAPI
    with pytest.raises(TypeError, match="colour"):
        client.post("/wrong-arguments")


def test_a_test_that_patches_fastapis_add_task_still_sees_the_apps_calls(
    make_client: MakeClient, workdir: Path
) -> None:
    # Given an app's test that patches FastAPI's add_task, as apps' suites do to assert
    # what an endpoint adds (the app now uses afterward's BackgroundTasks)
    client = make_client(apps.tutorial001())
    with patch("fastapi.BackgroundTasks.add_task") as add_task:
        # When the endpoint runs
        assert client.post("/send-notification/foo@example.com").status_code == 200
    # Then the patch saw the app's call, as with FastAPI's class, and nothing was stored
    add_task.assert_called_once_with(
        apps.write_notification, "foo@example.com", message="some notification"
    )
    assert stored(client.app) == []


def test_a_patch_that_runs_the_task_at_once_does_not_swallow_the_others(
    make_client: MakeClient, workdir: Path
) -> None:
    # Given a fixture whose patched add_task runs the function at once (as some apps' do)
    client = make_client(apps.tutorial002())

    def run_now(func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        func(*args, **kwargs)

    with patch("fastapi.BackgroundTasks.add_task", side_effect=run_now):
        # When a request adds its tasks
        assert client.post("/send-notification/a@example.com?q=x").status_code == 200
    # Then they ran at once, in order, as with FastAPI's class under the same patch
    assert (workdir / "log.txt").read_text() == "found query: x\nmessage to a@example.com\n"
    # And once the patch is gone, tasks are stored and run after the response again
    client.post("/send-notification/b@example.com")
    assert stored(client.app) == [JobState.SUCCEEDED]
