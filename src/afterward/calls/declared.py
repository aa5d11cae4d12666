"""The callables an application's own code hands to afterward, found in its bytecode.

A drop-in app never decorates the functions its endpoints pass to ``add_task``, yet a
worker process (or the app itself, restarted after a crash) must know them before any
request has run: that is how it tells a function the application chose from any other
name a row can hold. `declared_in` reads the compiled code of every function and method
defined in the given modules and keeps the first argument of each call of ``add_task``,
``enqueue`` (and its variants) or ``BackgroundTask``, where that argument is written as a
global name or a dotted path from one (``send_receipt``, ``mailer.send``,
``jobs.Billing.charge``, ``functools.partial(send_receipt, …)``). The name is looked up
in the function's own module, as Python would when the call runs; nothing is imported and
no code runs. An argument held in a local variable is not seen: such a function is
registered with ``@task`` or ``Afterward(tasks=[...])``.
"""

from __future__ import annotations

import dis
import functools
import inspect
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from types import CodeType, FunctionType, ModuleType
from typing import Any

from .naming import bind

__all__ = ["declared_in"]

log = logging.getLogger("afterward")

CALLS = frozenset(
    {"add_task", "add_call", "enqueue", "enqueue_many", "enqueue_in", "enqueue_in_sync"}
)
"""Methods whose first argument becomes a task."""
CONSTRUCTORS = frozenset({"BackgroundTask"})
"""Callables whose first argument becomes a task (Starlette's shape)."""
_NAMES = CALLS | CONSTRUCTORS
_GLOBAL_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_ATTRIBUTE_LOADS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})


def declared_in(
    modules: Iterable[ModuleType],
) -> Iterator[tuple[Callable[..., Any], dict[str, Any]]]:
    """Each callable passed as a task by code defined in `modules`, with the globals of
    the code that passes it (duplicates possible). A module whose members cannot be read
    statically is skipped, with a log line."""
    for module in modules:
        try:
            found = [
                (func, scope)
                for code, scope in _code_of(module)
                if not _NAMES.isdisjoint(code.co_names)  # decided without disassembling
                for func in _passed(code, scope)
            ]
        except Exception as exc:  # an app's odd module never stops the others
            log.warning(
                "could not read %r for the functions it passes to add_task: %r",
                module.__name__,
                exc,
            )
            continue
        yield from found


def _code_of(module: ModuleType) -> Iterator[tuple[CodeType, dict[str, Any]]]:
    """The code objects of the functions and methods `module` defines (and of what their
    ``functools.wraps`` decorators wrap), with the globals their names are looked up in.
    Members are read by type, so no property or ``__getattr__`` of the app runs."""
    name = module.__name__
    for value in list(vars(module).values()):
        if type(value) is FunctionType and value.__module__ == name:
            yield from _function(value)
        elif issubclass(type(value), type) and vars(value).get("__module__") == name:
            for member in list(vars(value).values()):
                kind = type(member)
                func = member.__func__ if kind in (staticmethod, classmethod) else member
                func = member.fget if kind is property else func
                if type(func) is FunctionType:
                    yield from _function(func)


def _function(func: FunctionType) -> Iterator[tuple[CodeType, dict[str, Any]]]:
    """`func`'s code and its nested code, then the same for what it wraps."""
    seen: set[int] = set()
    current: Any = func
    while type(current) is FunctionType and id(current) not in seen:
        seen.add(id(current))
        yield from _nested(current.__code__, current.__globals__)
        current = vars(current).get("__wrapped__")


def _nested(code: CodeType, scope: dict[str, Any]) -> Iterator[tuple[CodeType, dict[str, Any]]]:
    yield code, scope
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _nested(const, scope)


def _passed(code: CodeType, scope: dict[str, Any]) -> Iterator[Callable[..., Any]]:
    """The callables given as first argument to a call site in `code`."""
    steps = list(dis.get_instructions(code))
    for i, step in enumerate(steps):
        if step.argval not in _NAMES:
            continue
        if step.opname not in _ATTRIBUTE_LOADS and step.opname not in _GLOBAL_LOADS:
            continue
        found, end = _argument(steps, i + 1, scope)
        if found is functools.partial:  # partial(f, ...): the task is f
            found, end = _argument(steps, end, scope)
        if callable(found) and not _consumed(steps, end):
            yield found


def _argument(steps: list[dis.Instruction], start: int, scope: dict[str, Any]) -> tuple[Any, int]:
    """The object a run of loads from `start` evaluates to (a global, then attributes),
    and the index after it. None where the run does not start with a global, or where it
    is itself called (``handler_for(kind)``, ``module.pick(kind)``): then the task is what
    that call returns, which no reading of the code can know. Functions called in
    ``functools.partial(...)`` are the one exception, made by the caller. Attributes are
    read statically, so no property or ``__getattr__`` of the application runs."""
    if start >= len(steps) or steps[start].opname not in _GLOBAL_LOADS:
        return None, start
    head = steps[start]
    called = head.opname == "LOAD_GLOBAL" and bool(head.arg and head.arg & 1)  # NULL + name
    called = called or (start > 0 and steps[start - 1].opname == "PUSH_NULL")
    owner, found = None, scope.get(head.argval)
    end = start + 1
    while end < len(steps) and steps[end].opname in _ATTRIBUTE_LOADS:
        called = called or _loads_method(steps[end])
        owner, found = found, inspect.getattr_static(found, steps[end].argval, None)
        if owner is not None and not issubclass(type(owner), ModuleType):
            found = bind(owner, steps[end].argval, found)
        end += 1
    if called and found is not functools.partial:
        return None, end
    return found, end


def _loads_method(step: dis.Instruction) -> bool:
    """Whether `step` loads an attribute to call it (a method call's first half)."""
    if step.opname == "LOAD_METHOD":
        return True
    return (
        sys.version_info >= (3, 12)
        and step.opname == "LOAD_ATTR"
        and bool(step.arg and step.arg & 1)
    )


_CONSUMERS = (
    "BINARY_",
    "COMPARE_OP",
    "CONTAINS_OP",
    "IS_OP",
    "UNARY_",
    "POP_JUMP",
    "JUMP",
    "FORMAT_",
    "STORE_",
    "GET_",
    "FOR_ITER",
    "BUILD_SLICE",
    "COPY",
    "SWAP",
)
"""Instructions that use the value just loaded for something other than passing it on."""


def _consumed(steps: list[dis.Instruction], end: int) -> bool:
    """Whether the value loaded just before `end` goes into an expression (an operator, a
    condition, a subscript) rather than into the call as an argument."""
    return end < len(steps) and steps[end].opname.startswith(_CONSUMERS)
