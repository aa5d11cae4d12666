"""The FastAPI drop-in: ``from afterward.fastapi import BackgroundTasks``.

`BackgroundTasks` is a dependency: FastAPI gives every endpoint and dependency of one
request the same `RequestTasks`. After the endpoint returns and before the response starts,
its tasks are committed to the store as one chain; if the endpoint raised, nothing is
stored. In ``in_app`` mode the chain then runs in
this process right after the response, like FastAPI's own background tasks (so `TestClient`
returns once they are done).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from types import TracebackType
from typing import Annotated, TypeAlias

import fastapi
from fastapi import Depends, Request

from ._faultpoints import reach
from .app import Afterward
from .background import RequestTasks, TaskRef
from .errors import ConfigurationError

__all__ = ["Afterward", "BackgroundTasks", "RequestTasks", "TaskRef"]


async def request_tasks(request: Request, after_response: fastapi.BackgroundTasks) -> RequestTasks:
    """The request's task list, committed when the endpoint returns.

    A plain (not ``yield``) dependency that registers the commit on FastAPI's per-endpoint
    exit stack: that stack closes after the endpoint returns and before the response
    starts, and plain dependencies can be used by every other dependency, including
    ``yield`` ones.
    """
    afterward = Afterward.of(request.app, request.scope.get("state"))
    tasks = RequestTasks(afterward)
    stack = request.scope.get("fastapi_function_astack")
    if not isinstance(stack, AsyncExitStack):
        raise ConfigurationError(
            "afterward.fastapi.BackgroundTasks needs FastAPI 0.121 or newer "
            "(the per-endpoint exit stack is missing): pip install -U fastapi"
        )

    async def commit(
        exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if exc_type is None:
            reach("before_commit")
            ids = await tasks.commit()
            reach("after_commit")
            if ids and afterward.runs_in_app:
                after_response.add_task(_run_after_response, afterward, ids)
        else:
            tasks.discard()
        return False

    stack.push_async_exit(commit)
    return tasks


async def _run_after_response(afterward: Afterward, ids: list[str]) -> None:
    reach("after_response")
    await afterward.run_chain(ids)


BackgroundTasks: TypeAlias = Annotated[RequestTasks, Depends(request_tasks)]
"""Declare ``background_tasks: BackgroundTasks`` in an endpoint or dependency, as with FastAPI."""
