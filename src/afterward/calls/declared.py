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
from collections.abc import Callable, Iterable, Iterator
from types import CodeType, FunctionType, ModuleType
from typing import Any

__all__ = ["declared_in"]

CALLS = frozenset(
    {"add_task", "add_call", "enqueue", "enqueue_many", "enqueue_in", "enqueue_in_sync"}
)
"""Methods whose first argument becomes a task."""
CONSTRUCTORS = frozenset({"BackgroundTask"})
"""Callables whose first argument becomes a task (Starlette's shape)."""
_NAMES = CALLS | CONSTRUCTORS
_GLOBAL_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_ATTRIBUTE_LOADS = frozenset({"LOAD_ATTR", "LOAD_METHOD"})


def declared_in(modules: Iterable[ModuleType]) -> Iterator[Callable[..., Any]]:
    """Each callable passed as a task by code defined in `modules` (duplicates possible)."""
    for module in modules:
        for code, scope in _code_of(module):
            if _NAMES.isdisjoint(code.co_names):
                continue  # the common case, decided without disassembling
            yield from _passed(code, scope)


def _code_of(module: ModuleType) -> Iterator[tuple[CodeType, dict[str, Any]]]:
    """The code objects of the functions and methods `module` defines, with the globals
    their names are looked up in."""
    name = module.__name__
    for value in list(vars(module).values()):
        if inspect.isfunction(value) and value.__module__ == name:
            yield from _nested(value.__code__, value.__globals__)
        elif isinstance(value, type) and value.__module__ == name:
            for member in list(vars(value).values()):
                func = getattr(member, "__func__", getattr(member, "fget", member))
                if inspect.isfunction(func):
                    yield from _nested(func.__code__, func.__globals__)


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
        found, end = _chain(steps, i + 1, scope)
        if found is functools.partial:  # partial(f, ...): the task is f
            found, _ = _chain(steps, end, scope)
        if callable(found):
            yield found


def _chain(steps: list[dis.Instruction], start: int, scope: dict[str, Any]) -> tuple[Any, int]:
    """The object a run of loads from `start` evaluates to (a global, then attributes),
    and the index after it; None where the run does not start with a global. Attributes
    are read statically, so no property or ``__getattr__`` of the application runs."""
    if start >= len(steps) or steps[start].opname not in _GLOBAL_LOADS:
        return None, start
    owner, found = None, scope.get(steps[start].argval)
    end = start + 1
    while end < len(steps) and steps[end].opname in _ATTRIBUTE_LOADS:
        owner, found = found, inspect.getattr_static(found, steps[end].argval, None)
        end += 1
    if owner is not None and not isinstance(owner, ModuleType) and isinstance(found, _DESCRIPTORS):
        found = found.__get__(*((None, owner) if isinstance(owner, type) else (owner, type(owner))))
    return found, end


_DESCRIPTORS = (FunctionType, staticmethod, classmethod)
