"""`RequestTasks`: the tasks one request adds, kept in memory until the endpoint returns."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, ParamSpec

from ._faultpoints import reach
from .app import Afterward
from .calls.in_memory import CallSite, InMemoryCall
from .errors import TaskRefused
from .jobs import NewJob

__all__ = ["RequestTasks", "TaskRef"]

P = ParamSpec("P")


@dataclass(frozen=True)
class TaskRef:
    """The id a task will have once its request's tasks are committed (for a call kept
    in memory, the id of the stand-in row that holds its place)."""

    id: str


class RequestTasks:
    """One request's task list (what `BackgroundTasks` is inside an endpoint).

    `add_task` checks the call at once. A call that can be stored exactly is kept for the
    request's chain, stored when the endpoint returns, before the response is sent, and
    dropped if the endpoint raises. A call that cannot (see `in_memory`) is refused inside
    the request in strict mode; otherwise it keeps its place in the chain and runs in
    this process after the response, as FastAPI runs it, logged once per call site.
    """

    def __init__(self, afterward: Afterward) -> None:
        self.afterward = afterward
        self.pending: list[NewJob] = []
        self.in_memory: dict[str, InMemoryCall] = {}
        """The calls kept in memory, by the id of the stand-in row that holds their place."""
        self._closed = False

    def add_task(self, func: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> TaskRef:
        """Add `func(*args, **kwargs)` to run after the response, after the tasks added
        before it.

        :raises TaskRefused: in strict mode, the call cannot be stored (the message names
            the call site and says what to change).
        """
        return self.add_call(func, args, kwargs, sys._getframe(1))

    def add_call(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        caller: FrameType,
    ) -> TaskRef:
        """`add_task` for a wrapper that adds a call on its caller's behalf: the call is
        checked against, and refusals name, `caller` (the frame that called the wrapper)."""
        if self._closed:
            # In the code after a dependency's `yield`: on the FastAPI releases where that
            # code runs after the response, FastAPI's own list would never run it either.
            raise TaskRefused(
                f"add_task({getattr(func, '__qualname__', func)!r}) came after this request's "
                "tasks were committed (in the code after `yield` of a dependency?): it could "
                "not be stored. Add tasks before the response is sent."
            )
        try:
            task = self.afterward.prepare(func, args, kwargs, caller.f_globals)
        except TaskRefused as refusal:
            site = CallSite.of(caller)
            if self.afterward.settings.strict:
                raise _strict(refusal, site) from None
            task = self.afterward.calls.stand_in(func, site, refusal)
            self.in_memory[task.id] = InMemoryCall(func, args, kwargs)
        self.pending.append(task)
        return TaskRef(task.id)

    @property
    def reserve(self) -> bool:
        """Whether this process runs the request's chain itself: always in in-app mode,
        and in workers mode when a call of it can only run here."""
        return self.afterward.runs_in_app or bool(self.in_memory)

    async def commit(self) -> list[str]:
        """Store the pending tasks as one chain; return their ids. Later adds are refused."""
        self._closed = True
        if not self.pending:
            return []
        ids = await self.afterward.enqueue_chain(self.pending, reserve=self.reserve)
        self.pending = []
        return ids

    def discard(self) -> None:
        """Drop the pending tasks (the endpoint raised). Later adds are refused."""
        self._closed = True
        self.pending = []
        self.in_memory = {}

    async def settle(self, *, endpoint_raised: bool) -> list[str]:
        """Called once the endpoint is done, before the response starts: `discard` if it
        raised, else `commit`. Returns the ids this process must run after the response
        (`run_after_response`): none when workers run the chain."""
        if endpoint_raised:
            self.discard()
            return []
        reach("before_commit")
        ids = await self.commit()
        reach("after_commit")
        return ids if self.reserve else []

    async def run_after_response(self, ids: Sequence[str]) -> None:
        """Run the chain `settle` returned, in this process, after the response. A task's
        error is raised here only with `Settings.raise_task_errors` (as FastAPI raises a
        failed background task's error)."""
        reach("after_response")
        error = await self.afterward.run_chain(ids, self.in_memory)
        if error is not None and self.afterward.settings.raise_task_errors:
            raise error


def _strict(refusal: TaskRefused, site: CallSite) -> TaskRefused:
    """`refusal` as strict mode raises it: the same class, naming the call site."""
    return type(refusal)(
        f"{site}: {refusal} (strict mode refuses every add_task call that cannot be "
        "stored; without it, this call would run in memory after the response)"
    )
