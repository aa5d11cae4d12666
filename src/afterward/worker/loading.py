"""Find an application's `Afterward` from the path given to uvicorn (``app.main:app``)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from ..app import Afterward
from ..errors import ConfigurationError

__all__ = ["load_afterward"]


def load_afterward(target: str) -> Afterward:
    """Import ``module:attribute`` and return the `Afterward` it uses.

    The attribute may be an `Afterward`, or a FastAPI/Starlette app: then the instance
    installed on it, else one found among the module's globals, else one configured from
    the environment (as the app itself would create on its first request).
    """
    module_name, _, attribute = target.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(
            f"cannot import {module_name!r} ({exc}); give the module path you give uvicorn, "
            "e.g. `afterward worker app.main:app`, from the directory you run uvicorn in"
        ) from exc
    found: Any = getattr(module, attribute or "app", None)
    chosen = _find(module, found, target)
    chosen.registry.allow_package(module_name)
    return chosen


def _find(module: Any, found: Any, target: str) -> Afterward:
    if isinstance(found, Afterward):
        return found
    state = getattr(found, "state", None)
    if state is None:
        raise ConfigurationError(
            f"{target!r} is neither an Afterward instance nor a FastAPI/Starlette app"
        )
    in_module = [v for v in vars(module).values() if isinstance(v, Afterward)]
    if getattr(state, "afterward", None) is None and len(in_module) == 1:
        in_module[0].install(found)
    return Afterward.of(found)
