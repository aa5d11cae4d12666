"""`RequestTasks`: the tasks one request adds, kept in memory until the endpoint returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec

from .app import Afterward
from .errors import TaskRefused
from .jobs import NewJob

__all__ = ["RequestTasks", "TaskRef"]

P = ParamSpec("P")


@dataclass(frozen=True)
class TaskRef:
    """The id a task will have once its request's tasks are committed."""

    id: str


class RequestTasks:
    """One request's task list (what `BackgroundTasks` is inside an endpoint).

    `add_task` checks the call at once, so a lambda or an argument with no JSON form fails
    inside the request. The list is stored as one chain when the endpoint returns, before
    the response is sent, and dropped if the endpoint raises.
    """

    def __init__(self, afterward: Afterward) -> None:
        self.afterward = afterward
        self.pending: list[NewJob] = []
        self._closed = False

    def add_task(self, func: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> TaskRef:
        """Add `func(*args, **kwargs)` to run after the response, after the tasks added
        before it.

        :raises TaskRefused: the function or its arguments cannot be stored (the message
            says what to change).
        """
        if self._closed:
            raise TaskRefused(
                f"add_task({getattr(func, '__qualname__', func)!r}) came after this request's "
                "tasks were committed (in the code after `yield` of a dependency?): it could "
                "not be stored. Add tasks before the response is sent."
            )
        task = self.afterward.prepare(func, args, kwargs)
        self.pending.append(task)
        return TaskRef(task.id)

    async def commit(self) -> list[str]:
        """Store the pending tasks as one chain; return their ids. Later adds are refused."""
        self._closed = True
        if not self.pending:
            return []
        reserve = self.afterward.runs_in_app
        ids = await self.afterward.enqueue_chain(self.pending, reserve=reserve)
        self.pending = []
        return ids

    def discard(self) -> None:
        """Drop the pending tasks (the endpoint raised). Later adds are refused."""
        self._closed = True
        self.pending = []
