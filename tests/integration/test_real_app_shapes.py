"""The one-import swap for the shapes real apps pass to `add_task`, on every store.

Each call either is stored (durable) or, when it cannot be stored exactly, runs in memory
after the response in its place in the chain, as FastAPI runs it. Either way the task gets
values equal to, and of the same types as, those passed. Strict mode refuses the second
kind inside the request, naming the call site.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from afterward import Afterward, JobState, TaskRefused
from afterward.calls.in_memory import CallSite
from afterward.testing import drain

from . import shapes_app as shapes
from .stored import rows

STAND_IN = "afterward.calls.in_memory:stand_in"


@pytest.fixture
def app(store_url: str) -> Iterator[FastAPI]:
    shapes.RECEIVED.clear()
    shapes.post.reset_mock()
    made = shapes.build(store_url)
    yield made
    asyncio.run(Afterward.of(made).aclose())


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same type at every level that matters here."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(v, b[k]) for k, v in a.items())
    return bool(a == b)


def test_a_method_of_a_per_request_service_runs_in_memory_with_its_object(app: FastAPI) -> None:
    # Given an endpoint whose service object (made per request) adds its own bound method
    with TestClient(app) as client:
        # When it is called
        assert client.post("/bound-method").json() == {"ok": "bound-method"}
    # Then the method ran after the response, on that very object, with the same event
    ((label, (session, event)),) = shapes.RECEIVED
    assert label == "bus._publish_event"
    assert type(session) is object
    assert same(event, shapes.UserEvent(kind="created", user_id=7))
    # And its place in the chain is a stand-in row, succeeded, naming the call site
    (row,) = rows(app)
    assert (row.function, row.state) == (STAND_IN, JobState.SUCCEEDED)
    assert "shapes_app.py:" in row.payload and "_publish_event" in row.payload


@pytest.mark.parametrize(
    ("path", "functions", "received"),
    [
        (
            "/module-object-method",
            ["mailer.send_message"],
            [("mailer.send_message", ("noreply@example.com", {"to": "ada@example.com"}))],
        ),
        (
            "/class-and-static",
            ["Mailer.audit", "Mailer.render"],
            [("Mailer.audit", "signup"), ("Mailer.render", "hello")],
        ),
        (
            "/partial-and-wraps",
            ["notify", "wrapped"],
            [("notify", ("ada@example.com", "hi")), ("logged", "wrapped"), ("wrapped", 3)],
        ),
        (
            "/typed-values",
            ["typed"],
            [
                (
                    "typed",
                    (
                        Path("/srv/app"),
                        PurePosixPath("/a/b"),
                        timedelta(seconds=90),
                        ipaddress.IPv4Address("10.0.0.1"),
                        {shapes.UID},
                        shapes.POINT,
                    ),
                )
            ],
        ),
    ],
    ids=["module-object-method", "class-and-static", "partial-and-wraps", "typed-values"],
)
def test_storable_shapes_are_durable_and_arrive_unchanged(
    app: FastAPI, path: str, functions: list[str], received: list[tuple[str, Any]]
) -> None:
    # Given an endpoint adding a method of a module-level object, a classmethod, a
    # staticmethod, a partial, a functools.wraps wrapper or typed rich values
    with TestClient(app) as client:
        # When it is called
        assert client.post(path).status_code == 200
    # Then each task was stored under its name, and ran with equal values of equal types
    stored = rows(app)
    assert [r.function for r in stored] == [f"{shapes.__name__}:{f}" for f in functions]
    assert all(r.state is JobState.SUCCEEDED for r in stored), [
        (r.function, r.state, r.attempts, r.last_error) for r in stored
    ]
    assert len(shapes.RECEIVED) == len(received)
    for (label, value), (want_label, want) in zip(shapes.RECEIVED, received, strict=True):
        assert label == want_label
        assert same(value, want), (label, value, want)


def test_mocks_and_lambdas_run_in_memory_as_fastapi_runs_them(app: FastAPI) -> None:
    # Given an endpoint that adds a MagicMock (a patched requests.post) and a lambda
    with TestClient(app) as client:
        # When it is called
        assert client.post("/mock-and-lambda").status_code == 200
    # Then both ran after the response with what was passed
    shapes.post.assert_called_once_with("https://hooks.example.com", json={"n": 1})
    assert shapes.RECEIVED == [("lambda", "ran")]
    assert [(r.function, r.state) for r in rows(app)] == [(STAND_IN, JobState.SUCCEEDED)] * 2


def test_values_plain_json_would_change_are_stored_with_their_types(app: FastAPI) -> None:
    # Given an endpoint passing a Path inside dict[str, Any], a SerializeAsAny subclass,
    # and a UUID, a dataclass and a model to an unannotated parameter
    with TestClient(app) as client:
        # When it is called
        assert client.post("/rich-values").status_code == 200
    # Then every task was stored (no stand-in), ran, and got the very types it was given
    stored = rows(app)
    assert STAND_IN not in [r.function for r in stored]
    assert [r.state for r in stored] == [JobState.SUCCEEDED] * 5
    by_label = [label for label, _ in shapes.RECEIVED]
    assert by_label == ["configure", "handle", "untyped", "untyped", "untyped"]
    config, envelope, uid, point, model = (value for _, value in shapes.RECEIVED)
    assert same(config, {"root": Path("/srv/app"), "retries": 3})
    assert type(envelope.event) is shapes.UserEvent and envelope.event.user_id == 1
    assert type(uid) is uuid.UUID and uid == shapes.UID
    assert same(point, shapes.POINT)
    assert type(model) is shapes.UserEvent and model.user_id == 2


def test_a_value_no_worker_could_rebuild_runs_in_memory_logged_once_per_site(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an endpoint passing an instance of a class defined inside a function
    with caplog.at_level(logging.WARNING, logger="afterward"), TestClient(app) as client:
        # When it is called twice
        assert client.post("/opaque-value").status_code == 200
        assert client.post("/opaque-value").status_code == 200
    # Then the task got that very object, in memory, both times
    assert [type(v["handle"]).__name__ for _, v in shapes.RECEIVED] == ["Local", "Local"]
    assert [r.function for r in rows(app)] == [STAND_IN, STAND_IN]
    # And the call site was logged once, with file:line, why, and how to make it durable
    lines = [r.getMessage() for r in caplog.records if "not durable" in r.getMessage()]
    assert len(lines) == 1
    assert re.search(r"shapes_app\.py:\d+: add_task\(.*configure\)", lines[0])
    assert "Local" in lines[0] and "JSON-friendly" in lines[0]


def test_order_holds_across_stored_and_in_memory_tasks(app: FastAPI) -> None:
    # Given an endpoint adding a stored task, an in-memory one, then a stored one
    with TestClient(app) as client:
        # When it is called
        assert client.post("/mixed-order").status_code == 200
    # Then they ran in the order added, as one chain
    assert [label for label, _ in shapes.RECEIVED] == ["notify", "second", "notify"]
    stored = rows(app)
    assert [r.function == STAND_IN for r in stored] == [False, True, False]
    assert len({r.chain_id for r in stored}) == 1
    assert all(r.state is JobState.SUCCEEDED for r in stored), [
        (r.function, r.state, r.attempts, r.last_error) for r in stored
    ]


def test_a_failing_in_memory_task_holds_back_the_rest_of_its_chain(app: FastAPI) -> None:
    # Given a chain: a stored task, an in-memory one that raises, a stored one
    with TestClient(app) as client:
        # When the request is made, Then it still succeeds (the task runs after it)
        assert client.post("/in-memory-fails").status_code == 200
    # And the failure is kept with its error; the task behind it waits, as in any chain
    first, failed, third = rows(app)
    assert first.state is JobState.SUCCEEDED
    assert failed.state is JobState.FAILED and "webhook down" in (failed.last_error or "")
    assert third.state is JobState.WAITING
    assert [label for label, _ in shapes.RECEIVED] == ["notify"]


@pytest.mark.parametrize(
    ("path", "what"),
    [
        ("/bound-method", "no module holds by name"),
        ("/mock-and-lambda", "MagicMock"),
        ("/opaque-value", "Local"),
    ],
)
def test_strict_mode_refuses_inside_the_request_naming_the_call_site(
    store_url: str, path: str, what: str
) -> None:
    # Given the app in strict mode
    shapes.RECEIVED.clear()
    app = shapes.build(store_url, strict=True)
    try:
        # When an endpoint adds a call that cannot be stored
        # Then it is refused inside the request, naming file:line and the reason
        with TestClient(app) as client, pytest.raises(TaskRefused) as info:
            client.post(path)
        assert re.search(r"shapes_app\.py:\d+: ", str(info.value))
        assert what in str(info.value)
        assert "strict mode" in str(info.value)
        # And nothing of that request was stored or run
        assert rows(app) == []
        assert shapes.RECEIVED == []
    finally:
        asyncio.run(Afterward.of(app).aclose())


async def test_a_lost_in_memory_call_holds_its_chain_until_retried(store_url: str) -> None:
    # Given a chain stored as a web process would store it (a task, the stand-in of an
    # in-memory call, a task) whose process died before running it: nobody holds it
    afterward = Afterward(url=store_url, execution="workers")
    shapes.RECEIVED.clear()
    try:
        first = afterward.prepare(shapes.notify, ("first", "durable"), {})
        refusal = TaskRefused("a lambda")
        stand_in = afterward.calls.stand_in(shapes.got, CallSite("app.py", 7), refusal)
        third = afterward.prepare(shapes.notify, ("third", "durable"), {})
        ids = await afterward.enqueue_chain([first, stand_in, third], reserve=False)
        # When a worker runs what is due
        assert await drain(afterward, raise_on_failure=False) == [ids[1]]
        # Then the first ran, the stand-in failed as lost, and the third waits behind it
        lost = await afterward.get(ids[1])
        assert lost.state is JobState.FAILED and "lost with the process" in (lost.last_error or "")
        assert (await afterward.get(ids[2])).state is JobState.WAITING
        assert [v for _, v in shapes.RECEIVED] == [("first", "durable")]
        # When an operator retries the stand-in
        await afterward.store.retry(ids[1], now=afterward.runner.clock())
        assert await drain(afterward) == []
        # Then the chain goes on without the lost call
        assert [(await afterward.get(i)).state for i in ids] == [JobState.SUCCEEDED] * 3
        assert [v for _, v in shapes.RECEIVED] == [("first", "durable"), ("third", "durable")]
    finally:
        await afterward.aclose()
