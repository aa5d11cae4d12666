"""Stored names for the callables real apps pass: methods, classmethods, staticmethods,
partials and wrappers, and what a stored name may reach when walked back."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

import pytest

from afterward.calls.naming import find, target_of
from afterward.errors import FunctionNotImportable, UnknownFunction


def send(to: str, subject: str = "") -> str:
    return f"{to}:{subject}"


class Mailer:
    """A client held at module level, as fastapi-mail's `FastMail` usually is."""

    def __init__(self, sender: str) -> None:
        self.sender = sender

    def send_message(self, to: str) -> str:
        return f"{self.sender}->{to}"

    async def send_later(self, to: str) -> str:
        return to

    @classmethod
    def build(cls, sender: str) -> Mailer:
        return cls(sender)

    @staticmethod
    def render(text: str) -> str:
        return text.upper()


class LoudMailer(Mailer):
    pass


mailer = Mailer("noreply@example.com")
path_tool = PurePosixPath("/tmp")  # a library object held at module level


def logged(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


@logged
def wrapped_task(x: int) -> int:
    return x


@pytest.mark.parametrize(
    ("func", "name"),
    [
        (send, f"{__name__}:send"),
        (mailer.send_message, f"{__name__}:mailer.send_message"),
        (mailer.send_later, f"{__name__}:mailer.send_later"),
        (Mailer.build, f"{__name__}:Mailer.build"),
        (LoudMailer.build, f"{__name__}:LoudMailer.build"),
        (Mailer.render, f"{__name__}:Mailer.render"),
        (wrapped_task, f"{__name__}:wrapped_task"),
    ],
    ids=["function", "method", "async-method", "classmethod", "subclass", "static", "wraps"],
)
def test_storable_shapes_are_named_and_found_again(func: Callable[..., Any], name: str) -> None:
    # Given a callable a worker can reach from its module by name
    # When it is named, with this module's globals as the caller's scope
    target = target_of(func, globals())
    # Then the name walks back to an equal callable
    assert target.name == name
    assert target.func == func
    assert find(name) == func


def test_a_partial_is_stored_as_its_function_with_its_arguments_first() -> None:
    # Given a partial of a partial of a module-level function
    inner = functools.partial(send, "ada@example.com")
    outer = functools.partial(inner, subject="hi")
    # When it is named
    target = target_of(outer, globals())
    # Then it is the function, with the bound arguments kept in call order
    assert target.name == f"{__name__}:send"
    assert target.args == ("ada@example.com",)
    assert dict(target.kwargs) == {"subject": "hi"}
    assert target.func(*target.args, **target.kwargs) == outer()


def test_a_method_of_an_object_made_per_request_is_refused_with_advice() -> None:
    # Given a method of an object no module holds (a service made per request)
    service = Mailer("svc")
    # When it is named
    with pytest.raises(FunctionNotImportable) as info:
        target_of(service.send_message, globals())
    # Then the refusal says why and what to pass instead
    assert "no module holds by name" in str(info.value)
    assert "module-level function" in str(info.value)


@pytest.mark.parametrize(
    "name",
    [
        f"{__name__}:mailer.__class__",
        f"{__name__}:mailer.__init__.__globals__",
        f"{__name__}:os.system",  # walks into an imported module
        f"{__name__}:functools.partial",
        f"{__name__}:Mailer",  # a class, not a function
        f"{__name__}:mailer.sender",  # data, not a function
        f"{__name__}:pytest.main",
        f"{__name__}:Mailer.missing",
    ],
)
def test_a_stored_name_reaches_nothing_else(name: str) -> None:
    # Given a stored name that walks to something add_task could not have named
    # When it is found, Then it is refused
    with pytest.raises(UnknownFunction):
        find(name)
    assert callable(os.system)  # the module is imported here, and still not reachable through it


def test_a_method_of_a_library_object_the_module_holds_is_found() -> None:
    # Given a library object held at module level (the application chose to hold it)
    # When a method of it is found by name
    # Then it is admitted, as `target_of` names it
    assert find(f"{__name__}:path_tool.joinpath") == path_tool.joinpath
    assert target_of(path_tool.joinpath, globals()).name == f"{__name__}:path_tool.joinpath"
