"""An application installed into site-packages (a container image) is still application code."""

from __future__ import annotations

import sys
import sysconfig
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from afterward.errors import UnknownFunction
from afterward.tasks import TaskRegistry


@pytest.fixture
def installed_app() -> Iterator[types.ModuleType]:
    """A module `shopapp.tasks` whose file lies under site-packages."""
    module = types.ModuleType("shopapp.tasks")
    module.__file__ = str(Path(sysconfig.get_paths()["purelib"]) / "shopapp" / "tasks.py")

    def send_receipt(order_id: int) -> None: ...

    send_receipt.__module__, send_receipt.__qualname__ = "shopapp.tasks", "send_receipt"
    module.send_receipt = send_receipt  # type: ignore[attr-defined]
    sys.modules["shopapp.tasks"] = module
    yield module
    del sys.modules["shopapp.tasks"]


def test_installed_package_is_refused_until_known_as_the_app(
    installed_app: types.ModuleType,
) -> None:
    # Given a registry that does not know `shopapp` is the application
    registry = TaskRegistry()
    # Then a function of an installed package is refused like any library's
    with pytest.raises(UnknownFunction, match="not one of the application's own modules"):
        registry.resolve("shopapp.tasks:send_receipt")
    # When the app's package is made known (as install(), lifespan or the worker do)
    registry.allow_package("shopapp.main")
    # Then its functions resolve wherever the package is installed
    assert registry.resolve("shopapp.tasks:send_receipt") is installed_app.send_receipt


def test_standard_library_and_afterward_cannot_be_allowed() -> None:
    # Given a registry told that stdlib and afterward modules are the app
    registry = TaskRegistry()
    for name in ("os.path", "subprocess", "afterward.app", "__main__"):
        registry.allow_package(name)
    # Then their functions are still refused
    for name in ("os:system", "subprocess:run", "afterward.testing:drain"):
        with pytest.raises(UnknownFunction):
            registry.resolve(name)
