"""Which functions may run as tasks, under which names, with which options.

A task is stored by name (see `naming`): ``"module:function"``, ``"module:Class.method"``
or ``"module:object.method"``. `TaskRegistry.target` refuses at `add_task` time any
callable a worker could not find again (lambdas, closures, nested functions, methods of
objects made per request). `TaskRegistry.resolve` turns a stored name back into a callable
*without importing anything*: only what was registered in this process, or what
`naming.find` reaches in the application's own, already-imported modules. Application
modules are those of the packages that define the app's endpoints, create its `Afterward`
or hold the worker's target, wherever installed, plus any module outside the standard
library and site-packages.
"""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypedDict, TypeVar, Unpack, cast, overload

from .calls.naming import Target, find, target_of
from .errors import UnknownFunction

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
        return self.target(func).name

    def target(self, func: Callable[..., Any], scope: Mapping[str, Any] | None = None) -> Target:
        """Register what `func` stands for (see `naming.target_of`) and return it.

        :raises FunctionNotImportable: a worker could not find `func` by name.
        """
        found = target_of(func, scope)
        self._by_name[found.name] = found.func
        return found

    def resolve(self, name: str) -> Callable[..., Any]:
        """The function stored under `name`; never imports a module.

        :raises UnknownFunction: `name` is not a function this application may run.
        """
        found = self._by_name.get(name)
        if found is not None:
            return found
        module_name = name.partition(":")[0]
        module = sys.modules.get(module_name)
        if module is not None and not self._is_application_module(
            module_name, getattr(module, "__file__", None)
        ):
            raise UnknownFunction(
                f"{name!r}: {module_name!r} is not one of the application's own modules; "
                "register library functions explicitly with Afterward(tasks=[...])"
            )
        func = find(name)
        self._by_name[name] = func
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
