"""How a callable is stored by name, and how a stored name is found again.

A stored name is ``"module:path"``, where `path` is one or more attribute names walked
from the module: ``app.jobs:send_receipt`` (a function), ``app.jobs:Billing.charge`` (a
staticmethod or classmethod), ``app.mail:mailer.send_message`` (a method of an object the
module holds at its top level). `target_of` names what `add_task` is given; `find` walks a
name back without importing anything and admits only what `target_of` could have produced.

``functools.partial`` is stored as the function it wraps, with its bound arguments added
to the call's own, so a worker calls exactly what the partial would have.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from ..errors import FunctionNotImportable, UnknownFunction

__all__ = ["Target", "find", "target_of"]


@dataclass(frozen=True, slots=True)
class Target:
    """A callable as a worker will find it: its stored name, what that name resolves to,
    and the arguments a ``functools.partial`` had bound (added before the call's own)."""

    name: str
    func: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def target_of(func: Callable[..., Any], scope: Mapping[str, Any] | None = None) -> Target:
    """Name `func` for storage. `scope` is the calling module's globals, where a method's
    object is looked for by name (``mailer.send_message`` -> ``module:mailer.send_message``).

    :raises FunctionNotImportable: a worker could not find `func` again by name; the
        message says why and what to pass instead.
    """
    if _is_generator(func):
        raise TypeError(
            f"add_task() was given the generator function {_qualname(func)}: calling it only "
            "makes a generator and runs none of its body. Pass a plain or async function."
        )
    if isinstance(func, functools.partial):
        inner = target_of(func.func, scope)
        return Target(
            inner.name, inner.func, inner.args + func.args, {**inner.kwargs, **func.keywords}
        )
    if inspect.ismethod(func):
        return Target(_method_name(func, scope), func)
    if inspect.isfunction(func):
        return Target(_function_name(func), func)
    kind = type(func).__name__
    raise FunctionNotImportable(
        f"add_task() was given a {kind}, not a function: a worker can "
        "only find a function, a method of a module-level object, or a functools.partial of "
        "one by name. Define a function at the top of a module and pass it."
    )


def _function_name(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", "")
    if module is None or "<lambda>" in qualname or "<locals>" in qualname:
        raise FunctionNotImportable(
            f"add_task() cannot store {qualname or func!r}: a worker must find the function "
            "again by its module and name, so lambdas, closures and nested functions are "
            "refused. Move it to module level and pass what it captured as arguments."
        )
    name = f"{module}:{qualname}"
    if _walk(sys.modules.get(module), qualname) is not func:
        raise FunctionNotImportable(
            f"add_task() cannot store {module}.{qualname}: that name in its module is "
            "something else, so a worker would run the wrong code. Pass the function "
            "under the name it is defined with."
        )
    return name


def _method_name(method: Any, scope: Mapping[str, Any] | None) -> str:
    owner, name = method.__self__, method.__func__.__name__
    if isinstance(owner, type):  # a classmethod, reached through its class
        path = f"{owner.__qualname__}.{name}"
        if "<locals>" not in path and _walk(sys.modules.get(owner.__module__), path) == method:
            return f"{owner.__module__}:{path}"
    elif scope is not None:
        module = scope.get("__name__")
        for var, value in scope.items():
            held = value is owner and var.isidentifier() and not _is_dunder(var)
            if held and _walk(sys.modules.get(module or ""), f"{var}.{name}") == method:
                return f"{module}:{var}.{name}"
    raise FunctionNotImportable(
        f"add_task() cannot store {type(owner).__qualname__}.{name}: it is a method of an "
        "object that "
        "no module holds by name (one made per request, such as a service holding a "
        "database session), so a worker could not find that object again. Make it durable "
        "with a module-level function that takes what the method needs as arguments, or a "
        "method of a module-level object."
    )


def find(name: str) -> Callable[..., Any]:
    """The callable stored as `name`, walked from its already-imported module.

    Only what `target_of` produces is admitted: each step is a public or private name
    (never a dunder), no step leaves the module for another module, and the end is a
    Python function or a method of one (never a builtin, a class or another callable).

    :raises UnknownFunction: `name` is malformed, its module is not imported, or the walk
        does not end at such a function.
    """
    module_name, sep, path = name.partition(":")
    parts = path.split(".")
    if not sep or not module_name or not all(p.isidentifier() for p in parts):
        raise UnknownFunction(f"{name!r} is not a 'module:function' name")
    if any(_is_dunder(p) for p in parts):
        raise UnknownFunction(f"{name!r}: a stored name cannot reach a dunder attribute")
    module = sys.modules.get(module_name)
    if module is None:
        raise UnknownFunction(
            f"{name!r}: module {module_name!r} is not part of the loaded application "
            "(workers never import modules named by a task)"
        )
    found = _walk(module, path)
    if not inspect.isfunction(getattr(found, "__func__", found)):
        raise UnknownFunction(f"{name!r} is not a function or a method of one")
    if _is_generator(found):
        raise UnknownFunction(f"{name!r} is a generator function: calling it runs nothing")
    # A function, or a class whose methods are walked, must be defined in the module: an
    # imported library function or class is not the application's choice. A module-level
    # object (`mailer = Mailer()`) is, whatever its type.
    head = found if len(parts) == 1 else module.__dict__.get(parts[0])
    if (len(parts) == 1 or isinstance(head, type)) and head.__module__ != module_name:
        raise UnknownFunction(f"{name!r} is not defined in {module_name!r}")
    return found  # type: ignore[no-any-return]


def _walk(module: ModuleType | None, path: str) -> Any:
    """`module.a.b.c` for ``path="a.b.c"``, or None where a step is missing or would enter
    another module (a stored name never reaches code through a module's imports)."""
    found: Any = module
    for step in path.split("."):
        if found is None:
            return None
        found = found.__dict__.get(step) if found is module else getattr(found, step, None)
        if isinstance(found, ModuleType):
            return None
    return found


def _is_generator(func: Any) -> bool:
    inner = func.func if isinstance(func, functools.partial) else func
    inner = getattr(inner, "__func__", inner)
    return inspect.isgeneratorfunction(inner) or inspect.isasyncgenfunction(inner)


def _qualname(func: Any) -> str:
    inner = func.func if isinstance(func, functools.partial) else func
    return f"{getattr(inner, '__module__', '?')}.{getattr(inner, '__qualname__', inner)}"


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")
