"""Module-level task functions and apps the integration tests share.

Task functions must live at module level (a worker finds them by name), so they are here
rather than inside test functions.
"""

import asyncio
import random
import time
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException

from afterward.fastapi import BackgroundTasks

EVENTS: list[tuple[str, ...]] = []
"""What the tasks did, in order (tests clear it)."""


def write_log(message: str) -> None:
    with open("log.txt", mode="a") as log:
        log.write(message)


def write_notification(email: str, message: str = "") -> None:
    with open("log.txt", mode="w") as email_file:
        email_file.write(f"notification for {email}: {message}")


def record(*event: str) -> None:
    EVENTS.append(event)


async def record_later(*event: str) -> None:
    await asyncio.sleep(random.uniform(0, 0.02))
    EVENTS.append(event)


def record_slowly(*event: str) -> None:
    time.sleep(random.uniform(0, 0.02))
    EVENTS.append(event)


def tutorial001() -> FastAPI:
    """FastAPI's background-tasks tutorial 001, with only the import changed."""
    app = FastAPI()

    @app.post("/send-notification/{email}")
    async def send_notification(email: str, background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(write_notification, email, message="some notification")
        return {"message": "Notification sent in the background"}

    return app


def tutorial002() -> FastAPI:
    """FastAPI's background-tasks tutorial 002 (tasks from a dependency), import changed."""
    app = FastAPI()

    def get_query(background_tasks: BackgroundTasks, q: str | None = None) -> str | None:
        if q:
            background_tasks.add_task(write_log, f"found query: {q}\n")
        return q

    @app.post("/send-notification/{email}")
    async def send_notification(
        email: str, background_tasks: BackgroundTasks, q: Annotated[str, Depends(get_query)]
    ) -> dict[str, str]:
        background_tasks.add_task(write_log, f"message to {email}\n")
        return {"message": "Message sent"}

    return app


UNSERIALIZABLE = object()
"""A value with no JSON form."""


def misbehaving() -> FastAPI:
    """Endpoints that raise, or add what cannot be stored."""
    app = FastAPI()

    @app.post("/raises")
    def raises(background_tasks: BackgroundTasks) -> None:
        background_tasks.add_task(record, "must not run")
        raise RuntimeError("endpoint failed")

    @app.post("/http-error")
    def http_error(background_tasks: BackgroundTasks) -> None:
        background_tasks.add_task(record, "must not run")
        raise HTTPException(status_code=409, detail="conflict")

    @app.post("/lambda")
    def with_lambda(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(record, "stored before the refusal")
        background_tasks.add_task(lambda: record("lambda ran"))
        return {"status": "lambda added"}

    @app.post("/unserializable")
    def unserializable(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(record, UNSERIALIZABLE)  # type: ignore[arg-type]
        return {"status": "object added"}

    @app.post("/wrong-arguments")
    def wrong_arguments(background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(write_log, "x", colour="blue")  # type: ignore[call-arg]
        return {"status": "wrong call added"}

    return app


def chains() -> FastAPI:
    """Each request adds an async then a sync task; both record the request number."""
    app = FastAPI()

    @app.post("/chain/{n}")
    async def chain(n: int, background_tasks: BackgroundTasks) -> dict[str, int]:
        background_tasks.add_task(record_later, str(n), "first")
        background_tasks.add_task(record_slowly, str(n), "second")
        return {"n": n}

    return app


def log_path(root: Path) -> Path:
    return root / "log.txt"


FLAKY_CALLS: dict[str, int] = {}


def flaky(key: str, failures: int) -> None:
    """Fail `failures` times for `key`, then succeed."""
    FLAKY_CALLS[key] = FLAKY_CALLS.get(key, 0) + 1
    if FLAKY_CALLS[key] <= failures:
        raise ConnectionError(f"smtp down ({FLAKY_CALLS[key]})")


def always_fails(reason: str) -> None:
    raise ValueError(reason)


async def sleeps(seconds: float) -> None:
    await asyncio.sleep(seconds)


def burns_cpu(seconds: float) -> None:
    """Pure-Python busy loop in a worker thread (holds the GIL most of the time)."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    EVENTS.append(("burned", str(n > 0)))


def yield_dependency(add_after_yield: bool) -> FastAPI:
    """A `yield` dependency (request scope) that adds tasks, as apps with DB sessions do."""
    app = FastAPI()

    def session(background_tasks: BackgroundTasks):  # type: ignore[no-untyped-def]
        background_tasks.add_task(record, "opened")
        yield "session"
        if add_after_yield:
            background_tasks.add_task(record, "closed")

    @app.post("/work")
    def work(
        background_tasks: BackgroundTasks, s: Annotated[str, Depends(session)]
    ) -> dict[str, str]:
        background_tasks.add_task(record, "worked")
        return {"session": s}

    return app


def mounted(url: str) -> FastAPI:
    """A configured Afterward on the root app; the endpoint lives in a mounted sub-app."""
    from afterward import Afterward

    afterward = Afterward(url=url, execution="workers")
    root = FastAPI(lifespan=afterward.lifespan)
    v1 = FastAPI()

    @v1.post("/go")
    def go(background_tasks: BackgroundTasks) -> dict[str, str]:
        return {"task": background_tasks.add_task(record, "mounted").id}

    root.mount("/v1", v1)
    return root


def ship_order(order_id: int) -> None:
    """The task an order's transaction enqueues."""
    EVENTS.append(("ship", str(order_id)))


GATE: dict[str, asyncio.Event] = {}
"""`waits_at_gate` tasks wait for ``GATE["open"]`` (set by the test, on the runner's loop)."""


async def waits_at_gate(key: str) -> None:
    """Note the start, then wait until the test opens the gate."""
    EVENTS.append(("started", key))
    await GATE["open"].wait()
