"""The FastAPI drop-in: ``from afterward.fastapi import BackgroundTasks``.

`BackgroundTasks` is a dependency: FastAPI gives every endpoint and dependency of one
request the same `RequestTasks`. After the endpoint returns and before the response starts
(the exit of a ``scope="function"`` dependency), its tasks are committed to the store as one
chain; if the endpoint raised, nothing is stored. In ``in_app`` mode the chain then runs in
this process right after the response, like FastAPI's own background tasks (so `TestClient`
returns once they are done).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, TypeAlias

import fastapi
from fastapi import Depends, Request

from .app import Afterward
from .background import RequestTasks, TaskRef

__all__ = ["Afterward", "BackgroundTasks", "RequestTasks", "TaskRef"]


async def request_tasks(
    request: Request, after_response: fastapi.BackgroundTasks
) -> AsyncIterator[RequestTasks]:
    """The request's task list; committed when the endpoint returns."""
    afterward = Afterward.of(request.app)
    tasks = RequestTasks(afterward)
    yield tasks
    ids = await tasks.commit()
    if ids and afterward.runs_in_app:
        after_response.add_task(afterward.run_chain, ids)


BackgroundTasks: TypeAlias = Annotated[RequestTasks, Depends(request_tasks, scope="function")]
"""Declare ``background_tasks: BackgroundTasks`` in an endpoint or dependency, as with FastAPI."""
