"""Task names: what add_task may store, and what a worker may run (without importing)."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from os.path import join as imported_function
from pathlib import Path
from typing import Any

import pytest

from afterward.errors import FunctionNotImportable, InvalidOption, UnknownFunction
from afterward.tasks import TaskRegistry, options_of, task

_recording = False
_imports: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _recording and event == "import":
        _imports.append(str(args[0]))


sys.addaudithook(_audit)  # hooks cannot be removed: this one only acts while recording


@pytest.fixture
def imports() -> Iterator[list[str]]:
    """Modules imported while the test runs."""
    global _recording
    _imports.clear()
    _recording = True
    try:
        yield _imports
    finally:
        _recording = False


def module_level_task(x: int) -> int:
    return x * 2


@task(queue="emails", max_attempts=3, time_limit=None)
def decorated_task(to: str) -> str:
    return f"sent to {to}"


@task
def bare_decorated_task() -> str:
    return "done"


class Mailer:
    def send(self) -> None: ...

    @staticmethod
    def static_send() -> None: ...


_shadowed_originals: list[Callable[..., Any]] = []


def _swap(f: Callable[..., Any]) -> Callable[..., Any]:
    _shadowed_originals.append(f)
    return print


@_swap
def shadowed_task() -> None: ...


def _outer() -> Callable[[], int]:
    captured = 3

    def inner() -> int:
        return captured

    return inner


def test_module_level_function_is_named_module_colon_qualname() -> None:
    # Given a registry and a module-level function
    registry = TaskRegistry()
    # When its name is asked
    name = registry.name_of(module_level_task)
    # Then it is "module:qualname", and it resolves back to the same function
    assert name == f"{__name__}:module_level_task"
    assert registry.resolve(name) is module_level_task


@pytest.mark.parametrize(
    "func",
    [
        lambda: None,
        _outer(),
        Mailer().send,
        functools.partial(lambda x: x, 1),
        print,
        _shadowed_originals[0],
    ],
    ids=["lambda", "closure", "per-request-method", "partial-of-lambda", "builtin", "shadowed"],
)
def test_functions_a_worker_cannot_find_are_refused(func: Callable[..., Any]) -> None:
    # Given a callable a worker could not find again by "module:qualname"
    registry = TaskRegistry()
    # When its name is asked
    with pytest.raises(FunctionNotImportable) as info:
        registry.name_of(func)
    # Then it is refused with advice to use a module-level function (or its real name)
    message = str(info.value)
    assert (
        "module-level function" in message
        or "module level" in message
        or "top of a module" in message
        or ("name it is defined with" in message)
    )
    assert isinstance(info.value, ValueError)


def test_nested_function_message_says_to_move_it_to_module_level() -> None:
    # Given a nested function
    def nested() -> None: ...

    # When its name is asked
    # Then the refusal says to move it to module level
    with pytest.raises(FunctionNotImportable, match="Move it to module level"):
        TaskRegistry().name_of(nested)


def test_registry_built_with_functions_resolves_them() -> None:
    # Given a registry built with a library function, registered explicitly
    registry = TaskRegistry([json.loads, module_level_task])
    # When their names are resolved
    # Then the registered functions come back
    assert registry.resolve("json:loads") is json.loads
    assert registry.resolve(f"{__name__}:module_level_task") is module_level_task


def test_registry_refuses_unfit_functions_at_construction() -> None:
    # Given a lambda among the functions
    # When the registry is built
    # Then it is refused at once
    with pytest.raises(FunctionNotImportable):
        TaskRegistry([module_level_task, lambda: 1])


@pytest.mark.parametrize(
    "name",
    [
        "os:system",
        "builtins:eval",
        "subprocess:Popen",
        "shutil:rmtree",
        "json:loads",
        "pytest:main",
        "afterward.tasks:task",
        "no_such_module:f",
        "no_colon",
        ":f",
        "os:",
        "os:path.join",
        "os:1abc",
        f"{__name__}:Mailer",
        f"{__name__}:missing",
        f"{__name__}:_outer.inner",
    ],
)
def test_names_the_app_does_not_own_are_unknown(name: str, imports: list[str]) -> None:
    # Given an empty registry
    registry = TaskRegistry()
    # When a stored name outside the application's own functions is resolved
    # Then it is refused, and no module is imported along the way
    with pytest.raises(UnknownFunction):
        registry.resolve(name)
    assert imports == []


def test_function_imported_into_an_app_module_is_not_resolved() -> None:
    # Given a library function imported into this (application) module
    assert imported_function.__module__ != __name__
    # When it is resolved under this module's name
    # Then it is refused: only functions defined in the module are found
    with pytest.raises(UnknownFunction, match="not defined in"):
        TaskRegistry().resolve(f"{__name__}:imported_function")


def test_resolve_never_imports_an_unloaded_stdlib_module(imports: list[str]) -> None:
    # Given a stdlib module that nothing has imported yet
    module = next(m for m in ("colorsys", "tabnanny", "wave", "mailcap") if m not in sys.modules)
    # When a name in it is resolved
    with pytest.raises(UnknownFunction, match="never import"):
        TaskRegistry().resolve(f"{module}:main")
    # Then it is still not imported
    assert imports == []
    assert module not in sys.modules


def test_resolve_never_imports_an_unloaded_app_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, imports: list[str]
) -> None:
    # Given an application-looking module on sys.path that is not imported
    (tmp_path / "afterward_unit_unloaded.py").write_text("def run():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # When a name in it is resolved
    with pytest.raises(UnknownFunction, match="not part of the loaded application"):
        TaskRegistry().resolve("afterward_unit_unloaded:run")
    # Then no import happened
    assert imports == []
    assert "afterward_unit_unloaded" not in sys.modules


def test_the_audit_hook_does_see_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, imports: list[str]
) -> None:
    # Given the recording hook (a check that the other tests can fail)
    (tmp_path / "afterward_unit_probe.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "afterward_unit_probe", raising=False)
    # When a module is imported
    __import__("afterward_unit_probe")
    monkeypatch.delitem(sys.modules, "afterward_unit_probe")
    # Then the hook records it
    assert "afterward_unit_probe" in imports


def test_resolve_finds_a_task_of_an_imported_module(imports: list[str]) -> None:
    # Given an empty registry, and this (already imported) test module
    registry = TaskRegistry()
    # When its @task function is resolved by name, twice
    first = registry.resolve(f"{__name__}:decorated_task")
    # Then it comes back, without importing anything; an unmarked one is refused
    assert first is decorated_task
    assert registry.resolve(f"{__name__}:decorated_task") is first
    with pytest.raises(UnknownFunction, match="mark the function with @task"):
        registry.resolve(f"{__name__}:module_level_task")
    assert imports == []


def test_task_decorator_stores_options_and_keeps_the_function_callable() -> None:
    # Given functions decorated with and without options
    # When their options are read
    # Then they are what was given (empty when none), and the functions still run directly
    assert options_of(decorated_task) == {"queue": "emails", "max_attempts": 3, "time_limit": None}
    assert options_of(bare_decorated_task) == {}
    assert options_of(module_level_task) == {}
    assert decorated_task("ada") == "sent to ada"
    assert bare_decorated_task() == "done"
    assert TaskRegistry().name_of(decorated_task) == f"{__name__}:decorated_task"


def test_task_decorator_refuses_unknown_options() -> None:
    # Given a misspelt option
    # When the decorator is applied
    # Then it is refused, naming the option
    with pytest.raises(TypeError, match=r"unknown task option.*max_attempt\b"):
        task(max_attempt=3)(module_level_task)  # type: ignore[call-overload]
    assert options_of(module_level_task) == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": "high"}, "priority must be a whole number, not 'high'"),
        ({"max_attempts": 0}, "max_attempts must be between 1 and"),
        ({"time_limit": -1}, "time_limit must be finite and above 0"),
        ({"backoff_base": float("nan")}, "backoff_base must be finite"),
        ({"queue": ""}, "queue must be a name"),
        ({"retry_on": "ValueError"}, "retry_on must be a tuple of exception classes"),
        ({"redact": ["not a name"]}, "redact must be a list of parameter names"),
        ({"priority": 10**5000}, "an integer of about 5000 digits"),
    ],
)
def test_task_options_are_checked_when_decorating(options: dict[str, Any], message: str) -> None:
    # Given an option of the wrong type or out of range
    # When @task is applied, Then it refuses at import time, naming the option
    with pytest.raises(InvalidOption, match=message):
        task(**options)
