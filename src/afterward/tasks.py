"""Which functions may run as tasks, under which names, with which options.

A task is stored by name, ``"module:qualname"``. `TaskRegistry.name_of` refuses at
`add_task` time any function a worker could not find again (lambdas, closures, nested
functions, bound methods, partials). `TaskRegistry.resolve` turns a stored name back into a
function *without importing anything*: only functions registered in this process, or
module-level functions of the application's own, already-imported modules are ever
returned. Application modules are those of the packages that define the app's endpoints,
create its `Afterward` or hold the worker's target, wherever installed, plus any module
outside the standard library and site-packages.
"""

from __future__ import annotations

import inspect
import sys
import sysconfig
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypedDict, TypeVar, Unpack, cast, overload

from .errors import FunctionNotImportable, UnknownFunction

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
    """

    def mark(f: F) -> F:
        unknown = set(options) - set(TaskOptions.__annotations__)
        if unknown:
            raise TypeError(f"unknown task option(s): {', '.join(sorted(unknown))}")
        setattr(f, _OPTIONS_ATTRIBUTE, dict(options))
        return f

    return mark(func) if func is not None else mark


def options_of(func: Callable[..., Any]) -> TaskOptions:
    """The options given to `@task` for `func` (empty when it was not decorated)."""
    return cast(TaskOptions, getattr(func, _OPTIONS_ATTRIBUTE, {}))


class TaskRegistry:
    """The functions this process may run, by stored name."""

    def __init__(self, functions: Iterable[Callable[..., Any]] = ()) -> None:
        self._by_name: dict[str, Callable[..., Any]] = {}
        self._library_paths = _library_paths()
        self._app_packages: set[str] = set()
        for f in functions:
            self.name_of(f)

    def allow_package(self, module_name: str) -> None:
        """Treat the top-level package of `module_name` as application code, wherever it
        is installed (an app installed into site-packages, as in a container image)."""
        top = module_name.split(".")[0]
        if top not in sys.stdlib_module_names and top not in ("afterward", "__main__"):
            self._app_packages.add(top)

    def name_of(self, func: Callable[..., Any]) -> str:
        """Register `func` and return its stored name.

        :raises FunctionNotImportable: a worker could not find `func` by name.
        """
        name = _importable_name(func)
        self._by_name[name] = func
        return name

    def resolve(self, name: str) -> Callable[..., Any]:
        """The function stored under `name`; never imports a module.

        :raises UnknownFunction: `name` is not a function this application may run.
        """
        found = self._by_name.get(name)
        if found is not None:
            return found
        func = self._find_app_function(name)
        self._by_name[name] = func
        return func

    def _find_app_function(self, name: str) -> Callable[..., Any]:
        module_name, sep, qualname = name.partition(":")
        if not sep or not module_name or not qualname.isidentifier():
            raise UnknownFunction(f"{name!r} is not a 'module:function' name")
        module = sys.modules.get(module_name)
        if module is None:
            raise UnknownFunction(
                f"{name!r}: module {module_name!r} is not part of the loaded application "
                "(workers never import modules named by a task)"
            )
        if not self._is_application_module(module_name, getattr(module, "__file__", None)):
            raise UnknownFunction(
                f"{name!r}: {module_name!r} is not one of the application's own modules; "
                "register library functions explicitly with Afterward(tasks=[...])"
            )
        func = module.__dict__.get(qualname)
        if not inspect.isfunction(func) or func.__module__ != module_name:
            raise UnknownFunction(f"{name!r} is not a function defined in {module_name!r}")
        return func

    def _is_application_module(self, module_name: str, file: str | None) -> bool:
        top = module_name.split(".")[0]
        if top in self._app_packages:
            return True
        if top in sys.stdlib_module_names or file is None:
            return False
        path = Path(file).resolve()
        return not any(path.is_relative_to(p) for p in self._library_paths)


def _library_paths() -> list[Path]:
    paths = sysconfig.get_paths()
    keys = ("stdlib", "platstdlib", "purelib", "platlib")
    found = {Path(paths[k]).resolve() for k in keys if k in paths}
    found.add(Path(__file__).resolve().parent)  # afterward itself is never a task
    return sorted(found)


def _importable_name(func: Callable[..., Any]) -> str:
    if not inspect.isfunction(func):
        kind = type(func).__name__
        raise FunctionNotImportable(
            f"add_task() needs a module-level function, got a {kind} ({func!r}): "
            "define a function at the top of a module and pass it; pass bound values as "
            "arguments instead of a bound method or functools.partial."
        )
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", "")
    if module is None or "<lambda>" in qualname or "<locals>" in qualname or "." in qualname:
        raise FunctionNotImportable(
            f"add_task() cannot store {qualname or func!r}: a worker must find the function "
            "again by its module and name, so lambdas, closures, nested functions and "
            "methods are refused. Move it to module level and pass what it captured as "
            "arguments."
        )
    found = getattr(sys.modules.get(module), qualname, None)
    if found is not func and getattr(found, "__wrapped__", None) is not func:
        raise FunctionNotImportable(
            f"add_task() cannot store {module}.{qualname}: that name in its module is "
            "something else, so a worker would run the wrong code. Pass the function "
            "under the name it is defined with."
        )
    return f"{module}:{qualname}"
