"""The pytest plugin, active wherever afterward is installed (``-p no:afterward`` turns it
off). For an application's own test suite (see docs/testing.md):

- Unless ``AFTERWARD_URL`` is set, each test session stores its tasks in a SQLite file of
  its own in a temporary folder, removed at exit (each xdist worker has its own): nothing
  is written to the working directory and nothing carries over from one run to the next.
  It is set before any ``conftest.py`` is imported, so an ``Afterward()`` made at import
  time uses it.
- ``--afterward-raise-task-errors`` (ini ``afterward_raise_task_errors = true``) sets
  ``AFTERWARD_RAISE_TASK_ERRORS=1``: a request's task that fails in the test's process
  raises through `TestClient`, as FastAPI's own background tasks do. Off by default.
- The terminal summary lists the ``add_task`` call sites whose calls could not be stored
  and ran in memory (`afterward.testing.not_durable_calls`).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from .calls.in_memory import CallSite, not_durable_sites

__all__ = [
    "pytest_addoption",
    "pytest_configure",
    "pytest_load_initial_conftests",
    "pytest_sessionfinish",
    "pytest_terminal_summary",
    "pytest_testnodedown",
]

_URL = "AFTERWARD_URL"
_RAISE = "AFTERWARD_RAISE_TASK_ERRORS"
_OURS = "AFTERWARD_PYTEST_URL"
"""The URL this plugin chose: a pytest started inside the session (an xdist worker)
inherits it and chooses its own."""
_OPTION, _INI = "--afterward-raise-task-errors", "afterward_raise_task_errors"
_OUTPUT = "afterward_not_durable"
"""An xdist worker's `workeroutput` key: the call sites it saw."""
_SET = pytest.StashKey[bool]()
_KNOWN = pytest.StashKey[set[CallSite]]()
"""Sites seen before this session (a pytest run inside another's process)."""
_FROM_WORKERS = pytest.StashKey[dict[CallSite, str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    help_text = (
        "a request's task that fails in the test's process raises through TestClient, as "
        "FastAPI's background tasks do (sets AFTERWARD_RAISE_TASK_ERRORS=1; default: off, "
        "the task is retried as in production)"
    )
    group = parser.getgroup("afterward")
    group.addoption(_OPTION, action="store_true", default=False, help=help_text)
    parser.addini(_INI, help_text, type="bool", default=False)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Set the environment before conftest.py files (and the apps they import) load."""
    _set_environment(early_config)


def _set_environment(config: pytest.Config) -> None:
    """Choose the session's store and apply the raise option (once; undone with the
    session's configuration)."""
    if _SET in config.stash:
        return
    config.stash[_SET] = True
    saved = {name: os.environ.get(name) for name in (_URL, _OURS, _RAISE)}
    config.add_cleanup(lambda: _restore(saved))
    if os.environ.get(_URL) in (None, os.environ.get(_OURS)):
        folder = tempfile.mkdtemp(prefix="afterward-pytest-")
        # At exit: a store still open then (no lifespan, no close) may use it to the end.
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        url = f"sqlite:///{Path(folder, 'afterward.db').as_posix()}"
        os.environ[_URL] = os.environ[_OURS] = url
    dest = _OPTION.lstrip("-").replace("-", "_")
    early = getattr(config.known_args_namespace, dest, False)  # before the full parse
    if early or config.getoption(dest, False) or config.getini(_INI):
        os.environ[_RAISE] = "1"


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def pytest_configure(config: pytest.Config) -> None:
    _set_environment(config)  # the plugin was loaded too late for the hook above
    config.stash[_KNOWN] = set(not_durable_sites())
    config.stash[_FROM_WORKERS] = {}


def _seen(config: pytest.Config) -> dict[CallSite, str]:
    known, from_workers = config.stash[_KNOWN], config.stash[_FROM_WORKERS]
    seen = {site: why for site, why in not_durable_sites().items() if site not in known}
    return {**seen, **from_workers}


def pytest_sessionfinish(session: pytest.Session) -> None:
    output: dict[str, Any] | None = getattr(session.config, "workeroutput", None)
    if output is not None:  # an xdist worker: its controller prints the summary
        output[_OUTPUT] = [(s.file, s.line, why) for s, why in _seen(session.config).items()]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist: gather what a worker saw."""
    gathered = node.config.stash[_FROM_WORKERS]
    for file, line, why in getattr(node, "workeroutput", {}).get(_OUTPUT, ()):
        gathered.setdefault(CallSite(file, line), why)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    sites = _seen(config)
    if not sites or hasattr(config, "workerinput"):
        return
    count = f"{len(sites)} add_task call site{'s' if len(sites) > 1 else ''}"
    terminalreporter.write_sep("-", "afterward", yellow=True)
    terminalreporter.write_line(
        f"afterward: {count} would not be durable (calls ran in memory, not stored; "
        "AFTERWARD_STRICT=1 refuses them):"
    )
    here = config.invocation_params.dir
    for site, why in sites.items():
        path = Path(site.file)
        shown = path.relative_to(here) if path.is_relative_to(here) else path
        terminalreporter.write_line(f"  {shown}:{site.line}: {why}")
