"""An app whose endpoints hand `add_task` the shapes real apps use (bound methods, mocks,
partials, rich values), and the task functions they call. Each task records what it got
in `RECEIVED`, so a test can check values and types arrived unchanged."""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import Annotated, Any
from unittest.mock import MagicMock

import pydantic
from fastapi import Depends, FastAPI

from afterward import Afterward
from afterward.fastapi import BackgroundTasks

RECEIVED: list[tuple[str, Any]] = []
"""(what ran, what it received), in the order the tasks ran."""


def got(label: str, *values: Any) -> None:
    RECEIVED.append((label, values[0] if len(values) == 1 else values))


class Event(pydantic.BaseModel):
    kind: str


class UserEvent(Event):
    user_id: int


class Envelope(pydantic.BaseModel):
    event: pydantic.SerializeAsAny[Event]


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Mailer:
    """A client held at module level (fastapi-mail's `fm = FastMail(conf)`)."""

    def __init__(self, sender: str) -> None:
        self.sender = sender

    async def send_message(self, message: dict[str, str]) -> None:
        got("mailer.send_message", (self.sender, message))

    @classmethod
    def audit(cls, action: str) -> None:
        got("Mailer.audit", action)

    @staticmethod
    def render(text: str) -> None:
        got("Mailer.render", text)


mailer = Mailer("noreply@example.com")


class EventBus:
    """A service made per request (it would hold the request's database session)."""

    def __init__(self, bg: BackgroundTasks, session: object) -> None:
        self.bg = bg
        self.session = session

    def publish(self, event: Event) -> None:
        self.bg.add_task(self._publish_event, event=event)

    def _publish_event(self, event: Event) -> None:
        got("bus._publish_event", (self.session, event))


def get_bus(background_tasks: BackgroundTasks) -> EventBus:
    return EventBus(background_tasks, session=object())


Bus = Annotated[EventBus, Depends(get_bus)]


def logged(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        got("logged", func.__name__)
        return func(*args, **kwargs)

    return wrapper


@logged
def wrapped(x: int) -> None:
    got("wrapped", x)


def notify(to: str, subject: str) -> None:
    got("notify", (to, subject))


def configure(config: dict[str, Any]) -> None:
    got("configure", config)


def handle(envelope: Envelope) -> None:
    got("handle", envelope)


def untyped(value):  # type: ignore[no-untyped-def]  # an unannotated parameter, as apps write
    got("untyped", value)


def typed(
    path: Path,
    pure: PurePosixPath,
    delay: timedelta,
    address: ipaddress.IPv4Address,
    ids: set[uuid.UUID],
    point: Point,
) -> None:
    got("typed", (path, pure, delay, address, ids, point))


post = MagicMock(name="requests.post")
"""What an app's tests patch in for `requests.post`."""
failing_post = MagicMock(name="requests.post", side_effect=RuntimeError("webhook down"))

POINT = Point(1, 2)
UID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def build(url: str, *, strict: bool = False) -> FastAPI:
    afterward = Afterward(url=url, strict=strict)
    app = FastAPI(lifespan=afterward.lifespan)
    afterward.install(app)

    @app.post("/bound-method")
    def bound_method(events: Bus) -> dict[str, str]:
        events.publish(UserEvent(kind="created", user_id=7))
        return {"ok": "bound-method"}

    @app.post("/module-object-method")
    async def module_object_method(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(mailer.send_message, {"to": "ada@example.com"})
        return {"ok": "module-object-method"}

    @app.post("/class-and-static")
    def class_and_static(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(Mailer.audit, "signup")
        background_tasks.add_task(Mailer.render, "hello")
        return {"ok": "class-and-static"}

    @app.post("/partial-and-wraps")
    def partial_and_wraps(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(functools.partial(notify, "ada@example.com"), subject="hi")
        background_tasks.add_task(wrapped, 3)
        return {"ok": "partial-and-wraps"}

    @app.post("/mock-and-lambda")
    def mock_and_lambda(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(post, "https://hooks.example.com", json={"n": 1})
        background_tasks.add_task(lambda: got("lambda", "ran"))
        return {"ok": "mock-and-lambda"}

    _add_value_routes(app)
    return app


def _add_value_routes(app: FastAPI) -> None:
    """Endpoints passing values, and chains mixing stored and in-memory calls."""

    @app.post("/rich-values")
    def rich_values(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(configure, {"root": Path("/srv/app"), "retries": 3})
        background_tasks.add_task(handle, Envelope(event=UserEvent(kind="k", user_id=1)))
        background_tasks.add_task(untyped, UID)
        background_tasks.add_task(untyped, POINT)
        background_tasks.add_task(untyped, UserEvent(kind="k", user_id=2))
        return {"ok": "rich-values"}

    @app.post("/opaque-value")
    def opaque_value(background_tasks: BackgroundTasks) -> dict[str, str]:
        class Local:  # no module holds it: no form a worker could rebuild
            pass

        background_tasks.add_task(configure, {"handle": Local()})
        return {"ok": "opaque-value"}

    @app.post("/typed-values")
    def typed_values(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(
            typed,
            Path("/srv/app"),
            PurePosixPath("/a/b"),
            timedelta(seconds=90),
            ipaddress.IPv4Address("10.0.0.1"),
            {UID},
            POINT,
        )
        return {"ok": "typed-values"}

    @app.post("/mixed-order")
    def mixed_order(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(notify, "first", "durable")
        background_tasks.add_task(lambda: got("second", "in memory"))
        background_tasks.add_task(notify, "third", "durable")
        return {"ok": "mixed-order"}

    @app.post("/in-memory-fails")
    def in_memory_fails(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(notify, "first", "durable")
        background_tasks.add_task(failing_post)
        background_tasks.add_task(notify, "third", "never")
        return {"ok": "in-memory-fails"}
