"""The per-endpoint exit stack on every supported FastAPI (0.100 and newer).

afterward commits a request's tasks when the endpoint returns and before the first byte of
the response is sent, and keeps none if the endpoint raises. It does so by pushing an exit
callback on an `AsyncExitStack` that wraps exactly the endpoint call (and the building of
the response object) and sees its exception.

FastAPI 0.121 and newer has that stack: ``scope["fastapi_function_astack"]``. Older
releases have none that closes at the right moment:

- 0.100 to 0.105: ``scope["fastapi_astack"]`` comes from a middleware and closes after the
  response was sent;
- 0.106 to 0.117: the request handler opens its own stack around the dependencies and the
  endpoint, but does not publish it in the scope for HTTP from 0.110 on;
- 0.118 to 0.120: ``scope["fastapi_inner_astack"]`` closes after the response was sent.

So on those releases, importing `afterward.fastapi` wraps `APIRoute.get_route_handler`
(once): the handler it returns runs inside a fresh `AsyncExitStack`, stored in the scope
under `_SCOPE_KEY`, that closes when the handler has returned the response object, before
the response is called (so before anything is sent), and that sees the handler's
exceptions. Every route created after the import gets it; a route created before it keeps
FastAPI's plain handler, and its first request that asks for `BackgroundTasks` raises
`ConfigurationError` saying so.

One difference remains (`YIELD_EXIT_BEFORE_RESPONSE`): on 0.106 to 0.117 the code after a
``yield`` dependency's ``yield`` runs inside the request handler, so before the response
and before the commit, and a task it adds is committed with the others; on the other
releases it runs after the response, too late to be stored.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Coroutine, MutableMapping
from contextlib import AsyncExitStack
from typing import Any

import fastapi
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from .errors import ConfigurationError

__all__ = [
    "FASTAPI_VERSION",
    "NATIVE_ENDPOINT_STACK",
    "YIELD_EXIT_BEFORE_RESPONSE",
    "endpoint_exit_stack",
    "install_endpoint_stack",
]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def _version(text: str) -> tuple[int, ...]:
    """``"0.115.14"`` → ``(0, 115, 14)``; a pre-release suffix (``0.121.0rc1``) is ignored."""
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


FASTAPI_VERSION = _version(fastapi.__version__)
NATIVE_ENDPOINT_STACK = FASTAPI_VERSION >= (0, 121)
"""Whether this FastAPI sets ``scope["fastapi_function_astack"]`` itself."""
YIELD_EXIT_BEFORE_RESPONSE = (0, 106) <= FASTAPI_VERSION < (0, 118)
"""Whether the code after a ``yield`` dependency's ``yield`` runs before the response is
sent (so before the request's tasks are committed, and a task it adds is stored too)."""

_SCOPE_KEY = "fastapi_function_astack" if NATIVE_ENDPOINT_STACK else "afterward_endpoint_astack"
_WRAPPED = "_afterward_endpoint_stack"
_MISSING = object()


def install_endpoint_stack() -> None:
    """On FastAPI before 0.121, give the handler of every route created from now on its
    per-endpoint exit stack. Idempotent; does nothing on FastAPI 0.121 and newer."""
    if NATIVE_ENDPOINT_STACK or getattr(APIRoute.get_route_handler, _WRAPPED, False):
        return
    original: Callable[[APIRoute], Handler] = APIRoute.get_route_handler

    @functools.wraps(original)
    def get_route_handler(self: APIRoute) -> Handler:
        return _with_endpoint_stack(original(self))

    setattr(get_route_handler, _WRAPPED, True)
    APIRoute.get_route_handler = get_route_handler  # type: ignore[method-assign]


def _with_endpoint_stack(handler: Handler) -> Handler:
    async def run_in_endpoint_stack(request: Request) -> Response:
        scope = request.scope
        previous = scope.get(_SCOPE_KEY, _MISSING)
        try:
            async with AsyncExitStack() as stack:
                scope[_SCOPE_KEY] = stack
                return await handler(request)
        finally:
            if previous is _MISSING:
                scope.pop(_SCOPE_KEY, None)
            else:
                scope[_SCOPE_KEY] = previous

    return run_in_endpoint_stack


def endpoint_exit_stack(scope: MutableMapping[str, Any]) -> AsyncExitStack:
    """The stack that closes after the endpoint returns and before the response is sent.

    Raises `ConfigurationError` where there is none: on FastAPI 0.100 to 0.120, for a route
    created before `afterward.fastapi` was imported.
    """
    stack = scope.get(_SCOPE_KEY)
    if isinstance(stack, AsyncExitStack):
        return stack
    if NATIVE_ENDPOINT_STACK:
        raise ConfigurationError(
            "afterward.fastapi.BackgroundTasks found no per-endpoint exit stack "
            f"(scope[{_SCOPE_KEY!r}]) although FastAPI {fastapi.__version__} should set it: "
            "is the endpoint served by something other than FastAPI's APIRoute?"
        )
    raise ConfigurationError(
        "afterward.fastapi.BackgroundTasks: this route was created before afterward.fastapi "
        f"was imported. On FastAPI 0.100 to 0.120 (this is {fastapi.__version__}), import "
        "afterward.fastapi before creating the routes (at the top of the module that creates "
        "the app or its routers), or upgrade to FastAPI 0.121 or newer, where the order does "
        "not matter"
    )
