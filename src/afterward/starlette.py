"""The Starlette shape: ``from afterward.starlette import BackgroundTasks, BackgroundTask``.

Starlette code (and some FastAPI code) makes its background tasks itself and hands them
to the response::

    async def signup(request):
        tasks = BackgroundTasks()
        tasks.add_task(send_welcome_email, to_address=email)
        return JSONResponse({"status": "ok"}, background=tasks)

With these classes in place of Starlette's, the tasks a response carries are committed to
the store after the endpoint returned that response and before its first byte, none if the
endpoint raised; then the response runs them, in the order they were added (in-app mode:
in this process, as Starlette runs them, so `TestClient` returns after they ran). A call
that cannot be stored is handled as `RequestTasks` handles it: run in memory in its place,
or refused in strict mode.

How. Starlette's `Response.__call__` sends the response and only then awaits its
background, and ``BackgroundTasks()`` is made without the request: neither leaves a moment
between the endpoint and the first byte. So importing this module wraps
`starlette.routing.request_response`, through which every `Route` created from then on
calls its endpoint function (FastAPI's path operations use FastAPI's own copy, left as it
is). Each call of the endpoint runs with a context variable naming it (a plain ``def``
endpoint's thread gets a copy of the context), through which every object of this module
made during the call finds the app's `Afterward` and registers its own `RequestTasks`.
When the endpoint has returned its response, before Starlette calls it, the objects the
response carries (its ``background``, or the items of a Starlette ``BackgroundTasks`` given
as its background) are committed, each as one chain, and the others are dropped, as
Starlette would never run them; if the endpoint raised, all are dropped. Starlette then
sends the response and awaits its background, which runs the committed chain
(`RequestTasks.run_after_response`).

Made anywhere else — in a route created before this module was imported, an
``HTTPEndpoint`` class, a middleware, a FastAPI path operation, outside a request — the
classes raise `ConfigurationError` saying so.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any, ParamSpec, cast

import fastapi.routing  # noqa: F401  (first: older FastAPI binds Starlette's own at import)
import starlette.background
import starlette.routing
from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Scope

from .app import Afterward
from .background import RequestTasks, TaskRef
from .errors import ConfigurationError

__all__ = ["BackgroundTask", "BackgroundTasks", "track_endpoints"]

P = ParamSpec("P")
Endpoint = Callable[[Request], Awaitable[Response] | Response]

_WRAPPED = "_afterward_tracks_endpoints"


class _EndpointCall:
    """One call of an endpoint function, and the objects of this module made during it."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.made: list[_Stored] = []
        self.done = False

    def request_tasks(self, made: _Stored) -> RequestTasks:
        """A task list for `made`, committed or dropped when the endpoint is done."""
        app = self.scope.get("app")
        if self.done or app is None:
            raise ConfigurationError(
                f"afterward.starlette.{type(made).__name__}() was made "
                + ("after its endpoint returned" if self.done else "outside a Starlette app")
                + ": it has no response to be committed before. Make it in the endpoint."
            )
        with _finding:  # a plain `def` endpoint runs in a thread: one zero-config instance
            afterward = Afterward.of(app, self.scope.get("state"))
        self.made.append(made)
        return RequestTasks(afterward)

    async def settle(self, response: Response) -> None:
        """Commit what `response` carries, drop the rest."""
        self.done = True
        carried = list(_carried(getattr(response, "background", None)))
        for made in self.made:
            if any(made is runs for runs in carried):
                made._ids = await made._request_tasks.settle(endpoint_raised=False)
            else:
                made._request_tasks.discard()

    def discard(self) -> None:
        """The endpoint raised: keep nothing."""
        self.done = True
        for made in self.made:
            made._request_tasks.discard()


def _carried(background: object) -> Iterator[object]:
    """What a response's background runs: itself, or the items of a Starlette
    ``BackgroundTasks``."""
    yield background
    if isinstance(background, starlette.background.BackgroundTasks):
        yield from background.tasks


_finding = threading.Lock()
_current: ContextVar[_EndpointCall | None] = ContextVar("afterward_endpoint", default=None)


def track_endpoints() -> None:
    """Make every Starlette `Route` created from now on run its endpoint function as
    described in the module. Done on import; idempotent."""
    original = starlette.routing.request_response
    if getattr(original, _WRAPPED, False):
        return

    @functools.wraps(original)
    def request_response(func: Endpoint) -> ASGIApp:
        return original(_tracked(func))

    setattr(request_response, _WRAPPED, True)
    starlette.routing.request_response = request_response


def _tracked(func: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    is_async = is_async_callable(func)

    async def tracked_endpoint(request: Request) -> Response:
        call = _EndpointCall(request.scope)
        token = _current.set(call)
        try:
            if is_async:
                response = await cast(Awaitable[Response], func(request))
            else:
                response = cast(Response, await run_in_threadpool(func, request))
        except BaseException:
            call.discard()
            raise
        finally:
            _current.reset(token)
        await call.settle(response)
        return response

    return tracked_endpoint


class _Stored(starlette.background.BackgroundTask):
    """What both classes share: a task list of the endpoint call that made the object,
    committed before the response and run by it."""

    _request_tasks: RequestTasks
    _ids: list[str]

    def _register(self) -> None:
        call = _current.get()
        if call is None:
            raise ConfigurationError(
                f"afterward.starlette.{type(self).__name__}() was made outside an endpoint "
                "function of a Starlette Route created after `import afterward.starlette`, "
                "so there is no response it could be committed before. Import "
                "afterward.starlette before creating the app and its routes (at the top of "
                "the module that does). HTTPEndpoint classes, middlewares and code outside "
                "a request are not supported; in a FastAPI path operation declare "
                "`background_tasks: afterward.fastapi.BackgroundTasks` instead"
            )
        self._request_tasks = call.request_tasks(self)
        self._ids = []

    async def __call__(self) -> None:
        """Run the committed tasks: Starlette awaits this after sending the response."""
        ids, self._ids = self._ids, []
        if ids:
            await self._request_tasks.run_after_response(ids)


class BackgroundTask(_Stored):
    """Starlette's ``BackgroundTask(func, *args, **kwargs)``, stored before the response
    that carries it and run after it."""

    def __init__(self, func: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> None:
        self._register()
        super().__init__(func, *args, **kwargs)
        self._request_tasks.add_call(func, args, kwargs, sys._getframe(1))


class BackgroundTasks(_Stored):
    """Starlette's ``BackgroundTasks``: tasks stored before the response that carries them
    and run after it, one after the other. `tasks` are added first, in their order."""

    def __init__(self, tasks: Sequence[starlette.background.BackgroundTask] | None = None):
        self._register()
        caller = sys._getframe(1)
        for task in tasks or ():
            self._request_tasks.add_call(task.func, task.args, task.kwargs, caller)

    def add_task(self, func: Callable[P, Any], *args: P.args, **kwargs: P.kwargs) -> TaskRef:
        """Add `func(*args, **kwargs)` to run after the tasks added before it; see
        `RequestTasks.add_task`."""
        return self._request_tasks.add_call(func, args, kwargs, sys._getframe(1))


track_endpoints()
