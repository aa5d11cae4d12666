"""Which functions may run as tasks, under which names, with which options.

A task is stored by name (see `naming`): ``"module:function"``, ``"module:Class.method"``
or ``"module:object.method"``. `TaskRegistry.target` refuses at `add_task` time any
callable a worker could not find again (lambdas, closures, nested functions, methods of
objects made per request).

`TaskRegistry.resolve` turns a stored name back into a callable, *without importing
anything*, only if the application chose it (the allow-list):

- a function marked with `@task` (found in its own, already-imported module);
- a function given to `Afterward(tasks=[...])`;
- a function the application's code passes to ``add_task``/``enqueue`` where its bytecode
  names it (see `calls.declared`), read from the application's packages: those defining
  its endpoints, creating its `Afterward` or holding the worker's target;
- a function this process has passed to ``add_task``/``enqueue`` itself.

Anything else a row names is refused, whatever module or folder it comes from.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any, TypedDict, TypeVar, Unpack, cast, overload

from .calls.declared import declared_in
from .calls.naming import Target, find, is_unbound, target_of
from .errors import FunctionNotImportable, UnknownFunction
from .options import check_option

__all__ = ["TaskOptions", "TaskRegistry", "task"]

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS_ATTRIBUTE = "__afterward_options__"


class TaskOptions(TypedDict, total=False):
    """Per-task settings, given to `@task(...)`. Any left out take the app's defaults."""

    queue: str
    priority: int
    max_attempts: int
    backoff_base: float
    backoff_max: float
    retry_on: tuple[type[BaseException], ...]
    time_limit: float | None
    redact: tuple[str, ...]
    """Parameters whose values `afterward show` (and any log) never shows."""


@overload
def task(func: F, /) -> F: ...
@overload
def task(**options: Unpack[TaskOptions]) -> Callable[[F], F]: ...
def task(func: F | None = None, /, **options: Unpack[TaskOptions]) -> F | Callable[[F], F]:
    """Mark a function as a task, optionally with its own options.

    The function is returned unchanged (still callable directly); `add_task` reads the
    options from it, and workers accept it by name::

        @task(queue="reports", max_attempts=3, time_limit=600)
        def build_report(report_id: int) -> None: ...

    :raises InvalidOption: an option of the wrong type or out of range (named).
    """
    checked = _checked(options)

    def mark(f: F) -> F:
        setattr(f, _OPTIONS_ATTRIBUTE, checked)
        return f

    return mark(func) if func is not None else mark


def _checked(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(TaskOptions.__annotations__)
    if unknown:
        raise TypeError(f"unknown task option(s): {', '.join(sorted(unknown))}")
    return {name: check_option(name, value) for name, value in options.items()}


def options_of(func: Callable[..., Any]) -> TaskOptions:
    """The options given to `@task` for `func` (empty when it was not decorated)."""
    return cast(TaskOptions, getattr(func, _OPTIONS_ATTRIBUTE, {}))


def is_task(func: Callable[..., Any]) -> bool:
    """Whether `func` (or the function of a method) was marked with `@task`."""
    return hasattr(getattr(func, "__func__", func), _OPTIONS_ATTRIBUTE)


class TaskRegistry:
    """The functions this process may run, by stored name (see the module's docstring)."""

    def __init__(self, functions: Iterable[Callable[..., Any]] = ()) -> None:
        self._declared: dict[str, Callable[..., Any]] = {}
        """Chosen before any call: `Afterward(tasks=...)` and what app code passes."""
        self._passed: dict[str, Callable[..., Any]] = {}
        """Passed to `add_task`/`enqueue` in this process."""
        self._app_packages: set[str] = set()
        self._read: set[str] = set()
        """Modules whose code `_read_app_code` has read."""
        for f in functions:
            self.register(f)

    def register(self, func: Callable[..., Any]) -> str:
        """Allow `func` (a function, a method of a module-level object, or a classmethod or
        staticmethod) to run by name; return its stored name.

        :raises FunctionNotImportable: a worker could not find `func` by name.
        """
        found = target_of(func)
        self._declared[found.name] = found.func
        return found.name

    def allow_package(self, module_name: str) -> None:
        """Read the code of `module_name`'s top-level package for the functions it passes
        to `add_task` (see `calls.declared`): the application's own package."""
        top = module_name.split(".")[0]
        if top not in sys.stdlib_module_names and top not in ("afterward", "__main__"):
            self._app_packages.add(top)

    def name_of(self, func: Callable[..., Any]) -> str:
        """Register `func` as passed in this process and return its stored name.

        :raises FunctionNotImportable: a worker could not find `func` by name.
        """
        return self.target(func).name

    def target(self, func: Callable[..., Any], scope: Mapping[str, Any] | None = None) -> Target:
        """Register what `func` stands for (see `naming.target_of`) as passed in this
        process, and return it.

        :raises FunctionNotImportable: a worker could not find `func` by name.
        """
        found = target_of(func, scope)
        self._passed.setdefault(found.name, found.func)
        return found

    def is_declared(self, name: str) -> bool:
        """Whether any process of this application would run `name` before it is passed
        to `add_task` there: a worker process, or this app restarted after a crash."""
        try:
            self._chosen(name)
        except UnknownFunction:
            return False
        return True

    def resolve(self, name: str) -> Callable[..., Any]:
        """The function stored under `name`; never imports a module.

        :raises UnknownFunction: `name` is not a function this application chose.
        """
        found = self._passed.get(name)
        return found if found is not None else self._chosen(name)

    def _chosen(self, name: str) -> Callable[..., Any]:
        found = self._declared.get(name)
        if found is None and self._read_app_code():
            found = self._declared.get(name)
        if found is not None:
            return found
        try:
            marked = find(name)
        except UnknownFunction as exc:
            reason = f" ({exc})"
        else:
            if is_task(marked) and not is_unbound(name, marked):  # never `self` from a row
                self._declared[name] = marked
                return marked
            reason = ""
        raise UnknownFunction(
            f"{name!r} is not a task of this application{reason}: a worker runs only "
            "functions marked with @task, listed in Afterward(tasks=[...]) or passed to "
            "add_task by the application's own code; mark the function with @task if it "
            "is yours"
        )

    def _read_app_code(self) -> bool:
        """Declare what the application's modules not read yet pass to `add_task`; return
        whether there were any."""
        modules = [
            module
            for module_name, module in list(sys.modules.items())
            if module_name not in self._read
            and module_name.partition(".")[0] in self._app_packages
            and isinstance(module, ModuleType)
        ]
        for module in modules:
            self._read.add(module.__name__)
        for func, scope in declared_in(modules):
            try:
                found = target_of(func, scope)
            except (FunctionNotImportable, TypeError):
                continue  # passed, but not storable: it runs in memory, never from a row
            self._declared.setdefault(found.name, found.func)
        return bool(modules)
