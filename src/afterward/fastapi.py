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

import sys
from collections.abc import Callable
from types import TracebackType
from typing import Annotated, Any, ParamSpec, TypeAlias

import fastapi
from fastapi import Depends, Request
from starlette.background import BackgroundTask

from ._fastapi_compat import endpoint_exit_stack, install_endpoint_stack
from .app import Afterward
from .background import RequestTasks, TaskRef

__all__ = ["Afterward", "BackgroundTasks", "RequestTasks", "TaskRef"]

install_endpoint_stack()  # FastAPI 0.100-0.120 only: routes created from now on get the stack

P = ParamSpec("P")

_FASTAPIS_ADD_TASK = fastapi.BackgroundTasks.add_task
"""FastAPI's own `add_task`, as it was when afterward was imported."""


class _RequestTasks(RequestTasks):
    """`RequestTasks` that yields to a test's replacement of FastAPI's `add_task`.

    Apps' tests patch ``fastapi.BackgroundTasks.add_task`` to see, or run at once, what the
    app adds; after the import swap the app calls this class instead. While FastAPI's
    `add_task` is replaced, a call goes to the replacement, as it would have with FastAPI's
    class, and nothing is stored.
    """

    def add_task(self, func: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> TaskRef:
        if fastapi.BackgroundTasks.add_task is not _FASTAPIS_ADD_TASK:
            fastapi.BackgroundTasks().add_task(func, *args, **kwargs)
            return TaskRef("")
        return self.add_call(func, args, kwargs, sys._getframe(1))


async def request_tasks(request: Request, after_response: fastapi.BackgroundTasks) -> RequestTasks:
    """The request's task list, committed when the endpoint returns.

    A plain (not ``yield``) dependency that registers the commit on FastAPI's per-endpoint
    exit stack: that stack closes after the endpoint returns and before the response
    starts, and plain dependencies can be used by every other dependency, including
    ``yield`` ones.
    """
    afterward = Afterward.of(request.app, request.scope.get("state"))
    tasks = _RequestTasks(afterward)
    stack = endpoint_exit_stack(request.scope)

    async def commit(
        exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        ids = await tasks.settle(endpoint_raised=exc_type is not None)
        if ids:  # appended, not add_task: a test's patch of add_task must not take it
            after_response.tasks.append(BackgroundTask(tasks.run_after_response, ids))
        return False

    stack.push_async_exit(commit)
    return tasks


BackgroundTasks: TypeAlias = Annotated[RequestTasks, Depends(request_tasks)]
"""Declare ``background_tasks: BackgroundTasks`` in an endpoint or dependency, as with FastAPI."""
