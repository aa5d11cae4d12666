"""The drop-in: FastAPI's own examples and semantics, with only the import changed."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

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
from afterward.stores import JobFilter

from . import apps

MakeClient = Callable[..., TestClient]


def stored(app: object) -> list[JobState]:
    """States of every task the app's store holds, oldest first."""
    afterward = Afterward.of(app)

    async def read() -> list[JobState]:
        await afterward.open()
        return [j.state for j in reversed(await afterward.store.list(JobFilter()))]

    return asyncio.run(read())


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


def test_lambda_is_refused_inside_the_request(make_client: MakeClient) -> None:
    # Given an endpoint that passes a lambda to add_task
    client = make_client(apps.misbehaving())
    # When it is called, Then the refusal is raised inside the request, saying what to do
    with pytest.raises(FunctionNotImportable, match="module level"):
        client.post("/lambda")
    # And not even the task added before it was kept
    assert stored(client.app) == []
    assert apps.EVENTS == []


def test_unserializable_argument_is_refused_inside_the_request(make_client: MakeClient) -> None:
    # Given an endpoint that passes an object with no JSON form
    client = make_client(apps.misbehaving(), raise_server_exceptions=False)
    # When it is called, Then the request fails with a 500 and nothing is stored
    assert client.post("/unserializable").status_code == 500
    assert stored(client.app) == []
    # And the error itself tells the developer what to pass instead
    with pytest.raises(ArgumentNotSerializable, match="JSON-friendly"):
        make_client(apps.misbehaving()).post("/unserializable")


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
    # Given a `yield` dependency that adds a task after the response was committed
    client = make_client(apps.yield_dependency(add_after_yield=True))
    # When the request runs, Then that late task is refused loudly instead of dropped
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
        del sys.modules["__main__"].scripted  # type: ignore[attr-defined]


def test_arguments_that_do_not_fit_the_function_are_refused_inside_the_request(
    make_client: MakeClient,
) -> None:
    # Given an endpoint passing a keyword its task function does not take
    client = make_client(apps.misbehaving())
    # When it is called, Then the refusal names the function and the argument, inside the
    # request (not as a task failing later in a worker), and nothing is stored
    with pytest.raises(TaskRefused, match=r"write_log.*colour"):
        client.post("/wrong-arguments")
    assert stored(client.app) == []
