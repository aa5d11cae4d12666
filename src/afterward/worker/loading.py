"""Find an application's `Afterward` from the target given to uvicorn (``app.main:app``).

The target is imported as uvicorn imports it (`uvicorn.importer.import_from_string`), with
uvicorn's messages, so that a target uvicorn accepts is accepted here and one it refuses is
refused in the same words; uvicorn is not a dependency, so this is a copy of that function,
checked against it by the tests. A module whose own import fails (it raises, or imports a
package that is not installed) is reported with the traceback of that failure.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

from ..app import Afterward
from ..errors import ConfigurationError

__all__ = ["import_target", "load_afterward"]


def load_afterward(target: str) -> Afterward:
    """Import ``module:attribute`` and return the `Afterward` it uses.

    The attribute may be an `Afterward`, or a FastAPI/Starlette app: then the instance
    installed on it, else one found among the module's globals, else one configured from
    the environment (as the app itself would create on its first request).

    :raises ConfigurationError: the target cannot be imported (the message says why, with
        the traceback when the module's own code failed), or is neither an `Afterward`
        nor an app.
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module, found = import_target(target)
    chosen = _find(module, found, target)
    chosen.registry.allow_package(module.__name__)
    return chosen


def import_target(target: str) -> tuple[Any, Any]:
    """The module and the object ``module:attribute`` (attribute may be dotted) names.

    :raises ConfigurationError: with uvicorn's message for a target not in that format, a
        module that does not exist or an attribute it lacks; with the traceback when
        importing the module raised (a `ModuleNotFoundError` for another module too).
    """
    module_name, _, attributes = target.partition(":")
    if not module_name or not attributes:
        raise ConfigurationError(
            f'Import string "{target}" must be in format "<module>:<attribute>" '
            "(as given to uvicorn, e.g. app.main:app)."
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise _failed_import(module_name, exc) from exc
        raise ConfigurationError(
            f'Could not import module "{module_name}" (run from the directory you run uvicorn '
            "in, or set PYTHONPATH)."
        ) from None
    except MemoryError:
        raise  # under --max-memory: the caller says so
    except Exception as exc:
        raise _failed_import(module_name, exc) from exc
    instance: Any = module
    try:
        for attribute in attributes.split("."):
            instance = getattr(instance, attribute)
    except AttributeError:
        raise ConfigurationError(
            f'Attribute "{attributes}" not found in module "{module_name}".'
        ) from None
    return module, instance


def _failed_import(module_name: str, exc: Exception) -> ConfigurationError:
    """The error for a module whose own import raised `exc`, with its traceback less the
    frames of this module and of importlib's machinery."""
    shown = traceback.TracebackException.from_exception(exc)
    shown.stack = traceback.StackSummary.from_list(
        [frame for frame in shown.stack if not _ours(frame.filename)]
    )
    text = "".join(shown.format()).rstrip()
    return ConfigurationError(
        f'importing module "{module_name}" raised {type(exc).__name__}:\n{text}'
    )


def _ours(filename: str) -> bool:
    return filename in (__file__, importlib.__file__) or filename.startswith("<frozen importlib")


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
