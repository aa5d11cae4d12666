"""What a stored row may make a worker run: only what the application chose.

The app here is a real package written to a temporary folder on `sys.path`, outside
site-packages (as a library on PYTHONPATH, in a ``pip install --target`` folder or in
Debian's dist-packages is), so that no rule can lean on where a module's file lies.
"""

from __future__ import annotations

import importlib
import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from afterward import Afterward, task
from afterward.errors import FunctionNotImportable, UnknownFunction
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


        class Webhook:
            def __init__(self, url):
                self.url = url
                self.peer = None

            @task
            def deliver(self, event):
                pass


        hooks = Webhook("https://partner.example/hook")
        hooks.peer = Webhook("http://169.254.169.254/")

        LOOKUPS = []


        class Lazy:
            def __getattr__(self, name):
                LOOKUPS.append(name)
                raise RuntimeError("app code ran")

            @property
            def conn(self):
                LOOKUPS.append("conn")
                raise RuntimeError("app code ran")


        lazy = Lazy()


        class Repo:
            session = Lazy()  # read by type, never through its __getattr__


        class Hostile:
            @property
            def __class__(self):
                raise RuntimeError("app code ran")


        hostile = Hostile()

        def handler_for(kind):
            return send_receipt

        def audited(order_id):
            pass
    """,
    "shopapp/main.py": """
        import functools
        import importlib

        import evillib
        from shopapp.tasks import handler_for
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

        def logged(func):
            @functools.wraps(func)
            def wrapper(*args, **kwargs):
                return func(*args, **kwargs)
            return wrapper

        @logged
        def decorated(background_tasks):
            background_tasks.add_task(tasks.audited, 1)

        def plugin(background_tasks, name, kind):
            background_tasks.add_task(importlib.import_module(name).run)
            background_tasks.add_task(tasks.handler_for(kind), 1)
            background_tasks.add_task(handler_for(kind), 2)

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


def test_only_a_passed_value_is_declared_not_a_called_one(shopapp: ModuleType) -> None:
    # Given code that passes what a call returns (add_task(import_module(name).run))
    registry = _app_registry()
    # Then the functions called there are not declared (only what is passed could be)
    for name in ("importlib:import_module", "shopapp.tasks:handler_for"):
        assert not registry.is_declared(name)
    # And a function passed through a functools.wraps decorator's endpoint is declared
    assert registry.is_declared("shopapp.tasks:audited")


def test_a_row_cannot_choose_self_or_walk_objects(shopapp: ModuleType) -> None:
    # Given a @task method of a class, and the module-level object whose method it is
    registry = _app_registry()
    tasks = sys.modules["shopapp.tasks"]
    # Then the object's method runs, but not the function reached through the class (the
    # row would give `self`), nor a method of an object reached through another
    assert registry.resolve("shopapp.tasks:hooks.deliver") == tasks.hooks.deliver
    for name in ("shopapp.tasks:Webhook.deliver", "shopapp.tasks:hooks.peer.deliver"):
        with pytest.raises(UnknownFunction):
            registry.resolve(name)


def test_resolving_and_reading_run_no_app_code(shopapp: ModuleType) -> None:
    # Given objects whose __getattr__, properties and __class__ run code
    registry = _app_registry()
    tasks = sys.modules["shopapp.tasks"]
    # When rows name their attributes, and the app's code is read
    for name in (
        "shopapp.tasks:lazy.anything",
        "shopapp.tasks:lazy.conn",
        "shopapp.tasks:hostile.x",
    ):
        with pytest.raises(UnknownFunction):
            registry.resolve(name)
    # Then none of that code ran, and what the app passes is still declared
    assert tasks.LOOKUPS == []
    assert registry.is_declared("shopapp.tasks:send_receipt")


def test_a_method_of_an_imported_object_has_one_name_everywhere(shopapp: ModuleType) -> None:
    # Given `mailer`, made in shopapp.tasks, passed by shopapp.main which imports it
    main, tasks = sys.modules["shopapp.main"], sys.modules["shopapp.tasks"]
    # When add_task names it from the caller's module, and a worker from the app's code
    named = TaskRegistry().target(tasks.mailer.send, vars(main)).name
    # Then both give the name of the module that made it
    assert named == "shopapp.tasks:mailer.send"
    assert _app_registry().is_declared(named)


def test_add_task_of_an_undeclared_function_warns_once_or_is_refused_in_strict_mode(
    shopapp: ModuleType, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a function the app passes only through a variable (a worker would refuse it)
    func = sys.modules["shopapp.tasks"].not_passed_anywhere
    relaxed = Afterward(url=f"sqlite:///{tmp_path / 'a.db'}")
    relaxed.registry.allow_package("shopapp.main")
    # When it is prepared twice, Then it is stored, with one warning naming the fix
    with caplog.at_level(logging.WARNING, logger="afterward"):
        relaxed.prepare(func, (), {})
        relaxed.prepare(func, (), {})
    warnings = [r.getMessage() for r in caplog.records if "not_passed_anywhere" in r.getMessage()]
    assert len(warnings) == 1 and "mark the function with @task" in warnings[0]
    # And strict mode refuses it at every call
    strict = Afterward(url=f"sqlite:///{tmp_path / 'b.db'}", strict=True)
    for _ in range(2):
        with pytest.raises(FunctionNotImportable, match="would refuse its tasks"):
            strict.prepare(func, (), {})
