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
import itertools
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import FunctionType, ModuleType
from typing import Any

from ..errors import FunctionNotImportable, UnknownFunction

__all__ = ["Target", "bind", "find", "is_unbound", "target_of"]


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
    else:
        for module, var in _holders(owner, scope):
            if _walk(sys.modules.get(module), f"{var}.{name}") == method:
                return f"{module}:{var}.{name}"
    raise FunctionNotImportable(
        f"add_task() cannot store {type(owner).__qualname__}.{name}: it is a method of an "
        "object that "
        "no module holds by name (one made per request, such as a service holding a "
        "database session), so a worker could not find that object again. Make it durable "
        "with a module-level function that takes what the method needs as arguments, or a "
        "method of a module-level object."
    )


def _holders(owner: object, scope: Mapping[str, Any] | None) -> Iterator[tuple[str, str]]:
    """(module, variable) pairs naming `owner` at a module's top level, in an order that
    gives one object the same name wherever it is passed from: the module of its class,
    then `scope` (the module of the code passing it) or, without one, any loaded module
    (`Afterward(tasks=[...])`, worked out once)."""
    home = sys.modules.get(type(owner).__module__)
    first = [vars(home)] if home is not None else []
    rest = [scope] if scope is not None else [vars(m) for m in list(sys.modules.values())]
    for held in itertools.chain(first, rest):
        module = held.get("__name__")
        if isinstance(module, str):
            for var, value in list(held.items()):
                if value is owner and var.isidentifier() and not _is_dunder(var):
                    yield module, var


def find(name: str) -> Callable[..., Any]:
    """The callable stored as `name`, found in its already-imported module.

    Only the shapes `target_of` produces are admitted, each step read statically (no
    property or ``__getattr__`` of the application runs):

    - ``f``: a function defined in the module;
    - ``Class.f`` (or ``Outer.Inner.f``): a function, staticmethod or classmethod of a
      class defined in the module;
    - ``obj.m``: a method, defined on its class, of an object the module holds.

    No step is a dunder or leaves the module, and the end is never a builtin, a class or
    a generator function.

    :raises UnknownFunction: `name` is malformed, its module is not imported, or it does
        not name such a function.
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
    head = vars(module).get(parts[0])
    if len(parts) > 1 and not _is_class(head) and (len(parts) > 2 or _is_module(head)):
        raise UnknownFunction(f"{name!r}: only a method of a module-level object is reached")
    found = _walk(module, path)
    if not inspect.isfunction(getattr(found, "__func__", found)):
        raise UnknownFunction(f"{name!r} is not a function or a method of one")
    if _is_generator(found):
        raise UnknownFunction(f"{name!r} is a generator function: calling it runs nothing")
    # A function, or a class whose methods are walked, must be defined in the module: an
    # imported library function or class is not the application's choice. A module-level
    # object (`mailer = Mailer()`) is, whatever its type.
    home = (
        found.__module__
        if len(parts) == 1
        else vars(head).get("__module__")
        if _is_class(head)
        else module_name
    )
    if home != module_name:
        raise UnknownFunction(f"{name!r} is not defined in {module_name!r}")
    return found  # type: ignore[no-any-return]


def is_unbound(name: str, func: Callable[..., Any]) -> bool:
    """Whether `name` reaches `func` as a plain function through a class (``Class.f``), so
    that a call passes the instance as its first argument (the row would choose it)."""
    return "." in name.partition(":")[2] and inspect.isfunction(func) and not _static(name)


def _static(name: str) -> bool:
    module_name, _, path = name.partition(":")
    *classes, last = path.split(".")
    owner = _walk(sys.modules.get(module_name), ".".join(classes))
    return _is_class(owner) and type(vars(owner).get(last)) is staticmethod


def _walk(module: ModuleType | None, path: str) -> Any:
    """`module.a.b.c` for ``path="a.b.c"``, or None where a step is missing or would enter
    another module (a stored name never reaches code through a module's imports).

    Each step is read statically (`inspect.getattr_static`): no property, descriptor or
    ``__getattr__`` of the application runs. The last step is bound as Python would bind
    it: a classmethod to its class, a method defined on an object's class to the object."""
    if module is None:
        return None
    owner: Any = None
    found: Any = module
    for step in path.split("."):
        if found is None or (_is_module(found) and found is not module):
            return None
        owner = found
        found = (
            vars(module).get(step) if owner is module else inspect.getattr_static(owner, step, None)
        )
    if _is_module(found):
        return None
    return found if owner is module else bind(owner, step, found)


def bind(owner: Any, name: str, found: Any) -> Any:
    """`found`, read statically as `owner`'s attribute `name`, as ``owner.name`` would
    give it: functions and static and class methods bound; anything else (or a function
    an object holds in its own ``__dict__``) as it is."""
    if _is_class(owner):
        if type(found) in (FunctionType, staticmethod, classmethod):
            return found.__get__(None, owner)
        return found
    on_class = any(vars(kind).get(name) is found for kind in type(owner).__mro__)
    if on_class and type(found) is FunctionType:
        return found.__get__(owner, type(owner))
    return found


def _is_class(value: Any) -> bool:
    return issubclass(type(value), type)


def _is_module(value: Any) -> bool:
    return issubclass(type(value), ModuleType)


def _is_generator(func: Any) -> bool:
    inner = func.func if isinstance(func, functools.partial) else func
    inner = getattr(inner, "__func__", inner)
    return inspect.isgeneratorfunction(inner) or inspect.isasyncgenfunction(inner)


def _qualname(func: Any) -> str:
    inner = func.func if isinstance(func, functools.partial) else func
    return f"{getattr(inner, '__module__', '?')}.{getattr(inner, '__qualname__', inner)}"


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")
