"""The lesson's ``/tasks`` endpoint three ways, for `bench.web`: no tasks, FastAPI's own
`BackgroundTasks`, and afterward's (the store from ``AFTERWARD_URL``).

Both tasks are no-ops (one ``def``, one ``async def``), so what is measured is what each
way of running them costs the endpoint.
"""

import asyncio

import fastapi
from fastapi import FastAPI

from afterward.fastapi import BackgroundTasks


def write_audit(action: str) -> None:
    """The lesson's sync task, doing nothing."""


async def send_email(to: str) -> None:
    """The lesson's async task, doing nothing but yield once."""
    await asyncio.sleep(0)


none = FastAPI()
plain = FastAPI()
afterward = FastAPI()


@none.post("/tasks")
def create_task_without_tasks(title: str) -> dict[str, str]:
    """The endpoint alone: the ceiling."""
    return {"status": "created", "title": title}


@plain.post("/tasks")
def create_task_fastapi(title: str, background_tasks: fastapi.BackgroundTasks) -> dict[str, str]:
    """FastAPI's BackgroundTasks: in memory, run after the response, lost on a crash."""
    background_tasks.add_task(write_audit, f"created task {title!r}")
    background_tasks.add_task(send_email, "ada@example.com")
    return {"status": "created", "title": title}


@afterward.post("/tasks")
def create_task_afterward(title: str, background_tasks: BackgroundTasks) -> dict[str, str]:
    """afterward's: committed before the response, then run in this process."""
    background_tasks.add_task(write_audit, f"created task {title!r}")
    background_tasks.add_task(send_email, "ada@example.com")
    return {"status": "created", "title": title}
