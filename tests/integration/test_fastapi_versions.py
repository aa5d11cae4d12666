"""The timing guarantee on whichever FastAPI is installed (scripts/test-fastapi runs this on
each supported version): a request's tasks are in the store when the response's first byte
goes out, and none are kept when the endpoint raises."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

import fastapi
import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from afterward import ConfigurationError, JobState
from afterward._fastapi_compat import (
    NATIVE_ENDPOINT_STACK,
    YIELD_EXIT_BEFORE_RESPONSE,
    install_endpoint_stack,
)
from afterward.fastapi import BackgroundTasks

from . import apps
from .first_byte import FirstByteProbe
from .stored import stored

MakeClient = Callable[..., TestClient]

first_bytes: list[list[JobState]] = []
"""The store's task states each time a response started (`FirstByteProbe` appends)."""


def plain(background_tasks: BackgroundTasks) -> str:
    background_tasks.add_task(apps.record, "plain dependency")
    return "plain"


def with_yield(background_tasks: BackgroundTasks) -> Iterator[str]:
    background_tasks.add_task(apps.record, "yield dependency")
    yield "yield"


def probed_app() -> FastAPI:
    """An endpoint whose tasks come from a plain dependency, a `yield` dependency and the
    endpoint itself, in that order; ``?fail=http`` or ``?fail=crash`` makes it raise after
    adding its task."""
    app = FastAPI()
    app.add_middleware(FirstByteProbe, on_start=first_bytes.append)

    @app.post("/work")
    def work(
        background_tasks: BackgroundTasks,
        p: Annotated[str, Depends(plain)],
        y: Annotated[str, Depends(with_yield)],
        fail: str = "",
    ) -> dict[str, str]:
        background_tasks.add_task(apps.record, "endpoint")
        if fail == "http":
            raise HTTPException(status_code=409, detail="conflict")
        if fail == "crash":
            raise RuntimeError("endpoint failed")
        return {"dependencies": f"{p}+{y}"}

    return app


@pytest.fixture(autouse=True)
def _clear_probe() -> None:
    first_bytes.clear()


def test_tasks_are_stored_before_the_first_byte(make_client: MakeClient) -> None:
    # Given an endpoint whose plain dependency, yield dependency and body each add a task
    client = make_client(probed_app())
    # When it answers
    response = client.post("/work")
    assert response.status_code == 200, response.text
    # Then all three tasks were stored when the response's first byte went out, none run yet
    # (one chain: its head queued, the others waiting for it)
    queued, waiting = JobState.QUEUED, JobState.WAITING
    assert first_bytes == [[queued, waiting, waiting]], fastapi.__version__
    # And they ran after the response, in the order they were added
    assert apps.EVENTS == [("plain dependency",), ("yield dependency",), ("endpoint",)]
    assert stored(client.app) == [JobState.SUCCEEDED] * 3


@pytest.mark.parametrize(("fail", "status"), [("http", 409), ("crash", 500)])
def test_an_endpoint_that_raises_keeps_none(
    make_client: MakeClient, fail: str, status: int
) -> None:
    # Given the same endpoint, made to raise after every part added its task
    client = make_client(probed_app(), raise_server_exceptions=False)
    # When it is called
    response = client.post(f"/work?fail={fail}")
    # Then the error reaches the client
    assert response.status_code == status
    # And no task was stored when its first byte went out (an HTTPException's response
    # passes the probe; a crash's 500 is sent by the outermost middleware, past it)
    assert first_bytes == ([[]] if fail == "http" else [])
    # And none was stored or run afterwards either
    assert stored(client.app) == []
    assert apps.EVENTS == []


@pytest.mark.skipif(not YIELD_EXIT_BEFORE_RESPONSE, reason="only FastAPI 0.106 to 0.117")
def test_code_after_yield_that_runs_before_the_response_stores_its_task(
    make_client: MakeClient,
) -> None:
    # Given FastAPI 0.106 to 0.117, where the code after a dependency's `yield` runs before
    # the response, and a dependency that adds a task there
    app = apps.yield_dependency(add_after_yield=True)
    app.add_middleware(FirstByteProbe, on_start=first_bytes.append)
    client = make_client(app)
    # When the request runs
    assert client.post("/work").status_code == 200
    # Then that task was stored with the others before the first byte, and ran last
    queued, waiting = JobState.QUEUED, JobState.WAITING
    assert first_bytes == [[queued, waiting, waiting]]
    assert apps.EVENTS == [("opened",), ("worked",), ("closed",)]
    assert stored(client.app) == [JobState.SUCCEEDED] * 3


@pytest.mark.skipif(NATIVE_ENDPOINT_STACK, reason="FastAPI 0.121+ has its own endpoint stack")
def test_route_created_before_the_import_says_what_to_do(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given FastAPI's own route handler, as a route created before afterward.fastapi was
    # imported has it
    wrapped: Any = APIRoute.get_route_handler
    monkeypatch.setattr(APIRoute, "get_route_handler", wrapped.__wrapped__)
    client = make_client(probed_app())
    # When its endpoint asks for BackgroundTasks, Then the error says what to change
    with pytest.raises(
        ConfigurationError, match=r"import afterward\.fastapi before creating the routes"
    ):
        client.post("/work")
    assert apps.EVENTS == []


def test_the_route_handler_is_wrapped_once_and_only_where_needed() -> None:
    # Given afterward.fastapi imported (above), When the stack is installed again
    before = APIRoute.get_route_handler
    install_endpoint_stack()
    # Then nothing changes; and FastAPI 0.121+ is left as it is
    assert APIRoute.get_route_handler is before
    assert hasattr(before, "__wrapped__") is not NATIVE_ENDPOINT_STACK
