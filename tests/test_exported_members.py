"""afterward's public surface: `__all__` is sorted, complete, and documented."""

from __future__ import annotations

import ast
import inspect
import types
from pathlib import Path

import pytest

import afterward

INIT = Path(afterward.__file__)


def _names_bound_in_init() -> set[str]:
    tree = ast.parse(INIT.read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom | ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
    return names - {"__all__"}


def test_all_is_sorted_without_duplicates() -> None:
    # Given afterward.__all__
    exported = list(afterward.__all__)
    # Then it is sorted and every name appears once
    assert exported == sorted(exported)
    assert len(exported) == len(set(exported))


@pytest.mark.parametrize("name", afterward.__all__)
def test_every_exported_name_exists(name: str) -> None:
    # Given a name in __all__
    # When it is looked up on the package
    # Then it is there
    assert hasattr(afterward, name)


def test_every_public_name_bound_in_init_is_exported() -> None:
    # Given the names __init__.py binds (imports, assignments, definitions)
    public = {n for n in _names_bound_in_init() if not n.startswith("_")} | {"__version__"}
    # Then each public one is in __all__, and __all__ holds nothing else
    assert public == set(afterward.__all__)


def test_every_public_non_module_attribute_is_exported() -> None:
    # Given the package's attributes at run time (submodules aside)
    public = {
        name
        for name, value in vars(afterward).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    # Then each is in __all__
    assert public <= set(afterward.__all__)


@pytest.mark.parametrize("name", [n for n in afterward.__all__ if n != "__version__"])
def test_every_exported_name_has_a_docstring(name: str) -> None:
    # Given an exported object
    obj = getattr(afterward, name)
    # When its own docstring is read (not inherited, not a dataclass's generated one)
    doc = obj.__doc__ if "__doc__" in vars(obj) or not isinstance(obj, type) else None
    # Then it has one that says something
    assert doc and doc.strip()
    assert not doc.startswith(f"{name}(")
    assert inspect.getdoc(obj)


def test_version_is_a_non_empty_string() -> None:
    # Given the package version
    # Then it is a non-empty string
    assert isinstance(afterward.__version__, str)
    assert afterward.__version__
