"""What a stored row may make a worker run: only what the application chose.

The app here is a real package written to a temporary folder on `sys.path`, outside
site-packages (as a library on PYTHONPATH, in a ``pip install --target`` folder or in
Debian's dist-packages is), so that no rule can lean on where a module's file lies.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from afterward import task
from afterward.errors import UnknownFunction
from afterward.tasks import TaskRegistry

FILES = {
    "evillib.py": """
        import os

        def unsafe_load(command):
            os.system(command)
    """,
    "shopapp/__init__.py": "",
    "shopapp/tasks.py": """
        import functools

        from afterward import task

        def send_receipt(order_id):
            pass

        def reindex(shop):
            pass

        def restock(item, count):
            pass

        @task
        def cleanup():
            pass

        def not_passed_anywhere():
            pass

        def stream():
            yield 1

        class Mailer:
            def send(self, to):
                pass

            @task
            def marked(self):
                pass

        mailer = Mailer()


        class Billing:
            @classmethod
            def charge(cls, order_id):
                pass

        def archive(order_id):
            pass
    """,
    "shopapp/main.py": """
        import functools

        import evillib
        from starlette.background import BackgroundTask
        from shopapp import tasks
        from shopapp.tasks import mailer, send_receipt

        def checkout(background_tasks, order_id):
            background_tasks.add_task(send_receipt, order_id)
            background_tasks.add_task(mailer.send, "a@example.com")
            background_tasks.add_task(functools.partial(tasks.restock, "pen"), 3)
            return evillib

        class Admin:
            async def reindex(self, afterward, shop):
                await afterward.enqueue(tasks.reindex, shop)

        def starlette_shape(order_id):
            return BackgroundTask(tasks.archive, order_id)

        def classmethod_task(background_tasks):
            background_tasks.add_task(tasks.Billing.charge, 1)

        def variable(background_tasks):
            chosen = tasks.not_passed_anywhere
            background_tasks.add_task(chosen)
    """,
}


@pytest.fixture
def shopapp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """`shopapp.main` imported from a folder on sys.path (and `evillib` with it)."""
    for name, text in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("shopapp.main")
    for name in [m for m in sys.modules if m.split(".")[0] in ("shopapp", "evillib")]:
        del sys.modules[name]


def _app_registry() -> TaskRegistry:
    registry = TaskRegistry()
    registry.allow_package("shopapp.main")  # as install(), lifespan or the worker do
    return registry


def test_a_library_outside_site_packages_is_refused(shopapp: ModuleType) -> None:
    # Given an app that imports a library from a folder outside site-packages
    registry = _app_registry()
    # Then a row naming the library's function is refused, whatever its folder
    with pytest.raises(UnknownFunction, match="not a task of this application"):
        registry.resolve("evillib:unsafe_load")


def test_an_unregistered_function_of_the_app_is_refused(shopapp: ModuleType) -> None:
    # Given the app's own package
    registry = _app_registry()
    # Then neither an endpoint nor a function the app never passes may run from a row
    for name in ("shopapp.main:checkout", "shopapp.tasks:not_passed_anywhere"):
        with pytest.raises(UnknownFunction, match="mark the function with @task"):
            registry.resolve(name)


def test_what_the_app_code_passes_to_add_task_is_allowed(shopapp: ModuleType) -> None:
    # Given the app's package, whose endpoints pass functions to add_task and enqueue
    registry = _app_registry()
    tasks = sys.modules["shopapp.tasks"]
    # Then those functions may run from rows, before any request has run
    assert registry.resolve("shopapp.tasks:send_receipt") is tasks.send_receipt
    assert registry.resolve("shopapp.tasks:mailer.send") == tasks.mailer.send
    assert registry.resolve("shopapp.tasks:restock") is tasks.restock  # via partial
    assert registry.resolve("shopapp.tasks:reindex") is tasks.reindex  # via enqueue
    assert registry.resolve("shopapp.tasks:archive") is tasks.archive  # BackgroundTask(...)
    assert registry.resolve("shopapp.tasks:Billing.charge") == tasks.Billing.charge
    assert registry.is_declared("shopapp.tasks:send_receipt")


def test_the_app_code_is_only_read_for_known_packages(shopapp: ModuleType) -> None:
    # Given a registry that was never told which package is the application
    registry = TaskRegistry()
    # Then even a function the app passes is refused: nothing is trusted by default
    with pytest.raises(UnknownFunction):
        registry.resolve("shopapp.tasks:send_receipt")


def test_task_marks_and_explicit_lists_are_allowed(shopapp: ModuleType) -> None:
    # Given functions marked with @task, and one listed explicitly
    tasks = sys.modules["shopapp.tasks"]
    registry = TaskRegistry([tasks.not_passed_anywhere])
    # Then they run from rows without the app's package being known
    assert registry.resolve("shopapp.tasks:cleanup") is tasks.cleanup
    assert registry.resolve("shopapp.tasks:mailer.marked") == tasks.mailer.marked
    assert registry.resolve("shopapp.tasks:not_passed_anywhere") is tasks.not_passed_anywhere


def test_a_variable_passed_to_add_task_needs_registering(shopapp: ModuleType) -> None:
    # Given a function passed to add_task through a local variable
    registry = _app_registry()
    # Then it is not declared (a worker would refuse it) until this process passes it
    assert not registry.is_declared("shopapp.tasks:not_passed_anywhere")
    registry.name_of(sys.modules["shopapp.tasks"].not_passed_anywhere)
    assert registry.resolve("shopapp.tasks:not_passed_anywhere") is not None


def test_standard_library_and_afterward_cannot_be_allowed() -> None:
    # Given a registry told that stdlib and afterward modules are the app
    registry = TaskRegistry()
    for name in ("os.path", "subprocess", "afterward.app", "__main__"):
        registry.allow_package(name)
    # Then their functions are still refused
    for name in ("os:system", "subprocess:run", "afterward.testing:drain"):
        with pytest.raises(UnknownFunction):
            registry.resolve(name)


def test_generator_functions_are_refused(shopapp: ModuleType) -> None:
    # Given a generator function (calling it runs none of its body)
    stream = sys.modules["shopapp.tasks"].stream
    # Then it cannot be registered, and a row naming it is refused
    with pytest.raises(TypeError, match="generator function"):
        TaskRegistry([stream])
    with pytest.raises(UnknownFunction, match="generator function"):
        task(stream)
        TaskRegistry().resolve("shopapp.tasks:stream")
