"""The FastAPI drop-in: ``from afterward.fastapi import BackgroundTasks``.

`BackgroundTasks` is a dependency: FastAPI gives every endpoint and dependency of one
request the same `RequestTasks`. After the endpoint returns and before the response starts,
its tasks are committed to the store as one chain; if the endpoint raised, nothing is
stored. In ``in_app`` mode the chain then runs in
this process right after the response, like FastAPI's own background tasks (so `TestClient`
returns once they are done); so does a chain holding a call that could not be stored (see
`afterward.calls.in_memory`), in either mode.
"""

from __future__ import annotations

from types import TracebackType
from typing import Annotated, TypeAlias

import fastapi
from fastapi import Depends, Request

from ._fastapi_compat import endpoint_exit_stack, install_endpoint_stack
from .app import Afterward
from .background import RequestTasks, TaskRef

__all__ = ["Afterward", "BackgroundTasks", "RequestTasks", "TaskRef"]

install_endpoint_stack()  # FastAPI 0.100-0.120 only: routes created from now on get the stack


async def request_tasks(request: Request, after_response: fastapi.BackgroundTasks) -> RequestTasks:
    """The request's task list, committed when the endpoint returns.

    A plain (not ``yield``) dependency that registers the commit on FastAPI's per-endpoint
    exit stack: that stack closes after the endpoint returns and before the response
    starts, and plain dependencies can be used by every other dependency, including
    ``yield`` ones.
    """
    afterward = Afterward.of(request.app, request.scope.get("state"))
    tasks = RequestTasks(afterward)
    stack = endpoint_exit_stack(request.scope)

    async def commit(
        exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        ids = await tasks.settle(endpoint_raised=exc_type is not None)
        if ids:
            after_response.add_task(tasks.run_after_response, ids)
        return False

    stack.push_async_exit(commit)
    return tasks


BackgroundTasks: TypeAlias = Annotated[RequestTasks, Depends(request_tasks)]
"""Declare ``background_tasks: BackgroundTasks`` in an endpoint or dependency, as with FastAPI."""
