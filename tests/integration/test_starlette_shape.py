"""The Starlette shape: tasks made in the endpoint and handed to the response
(``JSONResponse(..., background=tasks)``), with only the import changed to
``afterward.starlette``; on every store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import fastapi.routing
import pytest
import starlette.background
import starlette.routing
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import afterward.starlette
from afterward import Afterward, ConfigurationError, FunctionNotImportable, JobState
from afterward.starlette import BackgroundTask, BackgroundTasks
from afterward.stores import JobFilter, store_from_url

from .first_byte import FirstByteProbe

EVENTS: list[tuple[Any, ...]] = []
"""What the tasks did and when the response went out, in order."""

QUEUED, WAITING, SUCCEEDED = JobState.QUEUED, JobState.WAITING, JobState.SUCCEEDED
ORDER_ID = UUID("6f1c2b1e-2a8e-4a57-9a4e-0b5e3c7d9f10")
PLACED_AT = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)


# -- task functions (module level: a worker finds them by name) ---------------------------


def send_welcome_email(to_address: str) -> None:
    EVENTS.append(("welcome email", to_address))


async def send_admin_notification(username: str) -> None:
    EVENTS.append(("admin notification", username))


def ship(order_id: UUID, placed_at: datetime) -> None:
    EVENTS.append(("shipped", order_id, placed_at))


def record(event: str) -> None:
    EVENTS.append((event,))


# -- endpoints ------------------------------------------------------------------------------


async def signup(request: Request) -> JSONResponse:
    """The Starlette docs' background-tasks example, with only the import changed."""
    data = await request.json()
    username = data["username"]
    email = data["email"]
    tasks = BackgroundTasks()
    tasks.add_task(send_welcome_email, to_address=email)
    tasks.add_task(send_admin_notification, username=username)
    message = {"status": "Signup successful"}
    return JSONResponse(message, background=tasks)


async def place_order(request: Request) -> JSONResponse:
    task = BackgroundTask(ship, ORDER_ID, placed_at=PLACED_AT)
    return JSONResponse({"status": "placed"}, background=task)


def place_order_sync(request: Request) -> JSONResponse:
    tasks = BackgroundTasks()
    tasks.add_task(record, "sync endpoint")
    return JSONResponse({"status": "placed"}, background=tasks)


async def fails(request: Request) -> JSONResponse:
    tasks = BackgroundTasks()
    tasks.add_task(record, "must not run")
    if request.query_params["how"] == "http":
        raise HTTPException(status_code=409, detail="conflict")
    raise RuntimeError("endpoint failed")


async def lambda_task(request: Request) -> PlainTextResponse:
    tasks = BackgroundTasks()
    tasks.add_task(record, "stored")
    tasks.add_task(lambda: EVENTS.append(("lambda ran",)))
    return PlainTextResponse("ok", background=tasks)


async def no_background(request: Request) -> PlainTextResponse:
    tasks = BackgroundTasks()
    tasks.add_task(record, "never attached")
    return PlainTextResponse("invalid", status_code=400)


async def composed(request: Request) -> PlainTextResponse:
    tasks = BackgroundTasks(
        [BackgroundTask(record, "first"), starlette.background.BackgroundTask(record, "second")]
    )
    tasks.add_task(record, "third")
    return PlainTextResponse("ok", background=tasks)


ROUTES = [
    ("/signup", signup),
    ("/order", place_order),
    ("/order-sync", place_order_sync),
    ("/fails", fails),
    ("/lambda", lambda_task),
    ("/no-background", no_background),
    ("/composed", composed),
]


def _first_byte(states: list[JobState]) -> None:
    EVENTS.append(("first byte", states))


def _sent() -> None:
    EVENTS.append(("response sent",))


MakeApp = Callable[..., Starlette]


@pytest.fixture
def make_app(workdir: Path, store_url: str) -> Iterator[MakeApp]:
    """A Starlette app of `ROUTES` behind `FirstByteProbe`, whose `Afterward` (made with
    the given options, on the test's store) is closed after the test."""
    made: list[Afterward] = []

    def make(**options: Any) -> Starlette:
        made.append(Afterward(url=store_url, **options))
        routes = [Route(path, endpoint, methods=["POST"]) for path, endpoint in ROUTES]
        return Starlette(
            routes=routes,
            middleware=[Middleware(FirstByteProbe, on_start=_first_byte, on_end=_sent)],
            lifespan=made[-1].lifespan,
        )

    EVENTS.clear()
    yield make
    for instance in made:
        asyncio.run(instance.aclose())


def stored(url: str) -> list[JobState]:
    """States of every task the store holds, oldest first."""

    async def read() -> list[JobState]:
        store = store_from_url(url)
        await store.open()
        try:
            return [job.state for job in reversed(await store.list(JobFilter()))]
        finally:
            await store.close()

    return asyncio.run(read())


def test_the_docs_example_stores_both_tasks_first_and_runs_them_after_in_order(
    make_app: MakeApp, store_url: str
) -> None:
    # Given the Starlette docs' signup endpoint, under a plain TestClient
    client = TestClient(make_app())
    # When someone signs up
    response = client.post("/signup", json={"username": "ada", "email": "ada@example.com"})
    # Then the response is Starlette's
    assert response.status_code == 200
    assert response.json() == {"status": "Signup successful"}
    # And both tasks were stored (one chain) before the first byte, and ran after the
    # response was sent, in the order added, with the arguments given, as given
    assert EVENTS == [
        ("first byte", [QUEUED, WAITING]),
        ("response sent",),
        ("welcome email", "ada@example.com"),
        ("admin notification", "ada"),
    ]
    assert all(type(event[1]) is str for event in EVENTS[2:])
    assert stored(store_url) == [SUCCEEDED, SUCCEEDED]


def test_a_single_background_task_keeps_its_argument_types(
    make_app: MakeApp, store_url: str
) -> None:
    # Given an endpoint that answers with background=BackgroundTask(ship, uuid, datetime)
    with TestClient(make_app()) as client:  # the lifespan runs
        # When it is called
        assert client.post("/order").json() == {"status": "placed"}
    # Then the task was stored before the first byte and ran after the response, with a
    # UUID and an aware datetime again
    assert EVENTS == [
        ("first byte", [QUEUED]),
        ("response sent",),
        ("shipped", ORDER_ID, PLACED_AT),
    ]
    assert type(EVENTS[2][1]) is UUID
    assert type(EVENTS[2][2]) is datetime
    assert stored(store_url) == [SUCCEEDED]


def test_a_sync_endpoint_stores_its_tasks_first(make_app: MakeApp, store_url: str) -> None:
    # Given a plain `def` endpoint (Starlette runs it in a thread)
    client = TestClient(make_app())
    # When it is called
    assert client.post("/order-sync").status_code == 200
    # Then its task was stored before the first byte and ran after the response
    assert EVENTS == [("first byte", [QUEUED]), ("response sent",), ("sync endpoint",)]
    assert stored(store_url) == [SUCCEEDED]


@pytest.mark.parametrize(("how", "status"), [("http", 409), ("crash", 500)])
def test_an_endpoint_that_raises_keeps_none(
    make_app: MakeApp, store_url: str, how: str, status: int
) -> None:
    # Given an endpoint that adds a task and then raises
    client = TestClient(make_app(), raise_server_exceptions=False)
    # When it is called
    response = client.post(f"/fails?how={how}")
    # Then the error reaches the client, with nothing stored when its first byte went out
    # (an HTTPException's response passes the probe; a crash's 500 is sent past it)
    assert response.status_code == status
    probed: list[tuple[Any, ...]] = (
        [("first byte", []), ("response sent",)] if how == "http" else []
    )
    assert probed == EVENTS
    # And nothing was stored or run afterwards either
    assert stored(store_url) == []


def test_tasks_the_response_does_not_carry_are_dropped_as_starlette_drops_them(
    make_app: MakeApp, store_url: str
) -> None:
    # Given an endpoint that makes tasks but answers without background=
    client = TestClient(make_app())
    # When it is called
    assert client.post("/no-background").status_code == 400
    # Then, as with Starlette, the tasks never run; and nothing was stored
    assert EVENTS == [("first byte", []), ("response sent",)]
    assert stored(store_url) == []


def test_tasks_given_to_background_tasks_come_first_in_one_chain(
    make_app: MakeApp, store_url: str
) -> None:
    # Given BackgroundTasks([afterward's BackgroundTask, Starlette's]) then add_task
    client = TestClient(make_app())
    # When it is called
    assert client.post("/composed").status_code == 200
    # Then the three were stored as one chain and ran in that order
    assert EVENTS == [
        ("first byte", [QUEUED, WAITING, WAITING]),
        ("response sent",),
        ("first",),
        ("second",),
        ("third",),
    ]
    assert stored(store_url) == [SUCCEEDED] * 3


def test_a_lambda_runs_in_memory_by_default_and_is_refused_in_strict_mode(
    make_app: MakeApp, store_url: str
) -> None:
    # Given an endpoint that adds a stored task, then a lambda
    client = TestClient(make_app())
    # When it is called, Then both ran after the response, in order, the lambda in memory
    # (its place in the chain held by a stand-in row)
    assert client.post("/lambda").status_code == 200
    assert EVENTS == [
        ("first byte", [QUEUED, WAITING]),
        ("response sent",),
        ("stored",),
        ("lambda ran",),
    ]
    assert stored(store_url) == [SUCCEEDED, SUCCEEDED]
    # Given the same app in strict mode (the same store)
    EVENTS.clear()
    strict = TestClient(make_app(strict=True))
    # When it is called, Then the refusal is raised inside the endpoint, naming its line
    with pytest.raises(FunctionNotImportable, match=r"test_starlette_shape\.py:\d+: "):
        strict.post("/lambda")
    # And not even the task added before it was kept
    assert EVENTS == []
    assert stored(store_url) == [SUCCEEDED, SUCCEEDED]


def test_workers_mode_queues_the_tasks_for_workers(make_app: MakeApp, store_url: str) -> None:
    # Given the docs example with a workers-mode Afterward
    client = TestClient(make_app(execution="workers"))
    # When someone signs up
    assert client.post("/signup", json={"username": "a", "email": "a@b.c"}).status_code == 200
    # Then the chain was stored before the first byte and left to the workers
    assert EVENTS == [("first byte", [QUEUED, WAITING]), ("response sent",)]
    assert stored(store_url) == [QUEUED, WAITING]


# -- where the classes work, and where they say why not -----------------------------------


def test_a_plain_route_of_a_fastapi_app_works_too(workdir: Path) -> None:
    # Given a FastAPI app with the docs' endpoint as a plain Starlette route
    EVENTS.clear()
    app = FastAPI()
    app.add_route("/signup", signup, methods=["POST"])
    client = TestClient(app)
    try:
        # When someone signs up, Then the tasks ran (zero configuration: afterward.db)
        assert client.post("/signup", json={"username": "b", "email": "b@c.d"}).is_success
        assert EVENTS == [("welcome email", "b@c.d"), ("admin notification", "b")]
        assert stored(f"sqlite:///{workdir / 'afterward.db'}") == [SUCCEEDED, SUCCEEDED]
    finally:
        asyncio.run(Afterward.of(app).aclose())


def test_outside_a_tracked_endpoint_the_error_says_what_to_do(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no request at all, When BackgroundTasks is made, Then it says why not
    with pytest.raises(ConfigurationError, match="outside an endpoint function"):
        BackgroundTasks()
    # Given a route created with Starlette's own request_response (as before the import)
    wrapped: Any = starlette.routing.request_response
    monkeypatch.setattr(starlette.routing, "request_response", wrapped.__wrapped__)
    app = Starlette(routes=[Route("/signup", signup, methods=["POST"])])
    monkeypatch.undo()
    # When it is called, Then the error says to import afterward.starlette first
    with pytest.raises(ConfigurationError, match=r"created after `import afterward\.starlette`"):
        TestClient(app).post("/signup", json={"username": "c", "email": "c@d.e"})
    # Given a FastAPI path operation, When it makes one, Then it is pointed to the dependency
    api = FastAPI()
    api.post("/signup")(signup)
    with pytest.raises(ConfigurationError, match=r"afterward\.fastapi\.BackgroundTasks"):
        TestClient(api).post("/signup", json={"username": "c", "email": "c@d.e"})


def test_request_response_is_wrapped_once_and_fastapis_own_is_untouched() -> None:
    # Given afterward.starlette imported (above), When it is installed again
    before = starlette.routing.request_response
    afterward.starlette.track_endpoints()
    # Then nothing changes, and FastAPI's path operations keep FastAPI's own function
    assert starlette.routing.request_response is before
    assert hasattr(before, "__wrapped__")
    assert fastapi.routing.request_response is not before
