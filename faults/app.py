"""The tasks experiments run. Each records itself in the ledger after doing its work.

With ``AFTERWARD_FAULTS_AUDIT=path`` in its environment, a process importing this module
(a worker loads ``faults.app:afterward``) installs an audit hook that appends to `path`
every import of a module it had not loaded by then (after loading what a worker loads
lazily whatever its tasks, see `_warm_up`), every ``exec`` and ``compile`` but those of
`_TRUSTED_COMPILERS`, and every ``os.system``, ``os.exec*``, ``os.spawn*``,
``os.posix_spawn``, ``os.fork``, ``subprocess.*`` and ``ctypes.*`` event: the hostile-rows
experiment proves with it that no stored row makes a worker import or run anything outside
the registry.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import sys
import time
from types import FrameType
from typing import Any

from afterward import Afterward, task

from .ledger import record

AUDIT_ENV = "AFTERWARD_FAULTS_AUDIT"
LIBRARY_ENV = "AFTERWARD_FAULTS_LIBRARY"
"""A module this app imports as an app imports a library, from a folder on PYTHONPATH
outside site-packages (the hostile-rows experiment names its functions in rows)."""

afterward = Afterward()
"""Configured from AFTERWARD_URL by the harness; workers load ``faults.app:afterward``."""


@task
def work(key: str, ms: float) -> None:
    """A short task: sleep `ms` milliseconds, then record."""
    time.sleep(ms / 1000)
    record(key)


@task
def burn(key: str, seconds: float) -> None:
    """Hold the GIL in pure Python for `seconds`, then record."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    record(key)


def not_a_task(key: str) -> None:
    """Defined in the app's module but never registered nor passed to `add_task`: rows
    naming it must be refused (if one ran, its key would be in the ledger)."""
    record(key)


POISON_ATTEMPTS = 3
"""The attempts a poison task gets (`@task(max_attempts=...)`)."""


@task(max_attempts=POISON_ATTEMPTS, backoff_base=0.2)
def segfault(key: str) -> None:
    """Crash the process with SIGSEGV."""
    ctypes.string_at(0)


@task(max_attempts=POISON_ATTEMPTS, backoff_base=0.2)
def hard_exit(key: str) -> None:
    """Leave the process at once, as `os._exit` does."""
    os._exit(3)


@task(max_attempts=POISON_ATTEMPTS, backoff_base=0.2, time_limit=30.0)
def hog(key: str) -> None:
    """Allocate memory until something stops it."""
    blocks = []
    while True:
        blocks.append(bytearray(64 * 1024 * 1024))


@task(max_attempts=POISON_ATTEMPTS, backoff_base=0.2, time_limit=0.5)
def spin(key: str) -> None:
    """Never return (a plain function: past its time limit its thread is stuck)."""
    while True:
        time.sleep(0.01)


_RUNS_CODE = (
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "subprocess.",
    "ctypes.",
)
"""Audit events (prefixes) of running a command or foreign code."""
_TRUSTED_NATIVE = frozenset({"afterward.worker.descendants"})
"""Callers whose ``ctypes`` use is expected: the worker making itself the subreaper of the
processes its tasks start (``prctl``), so it can stop them when it stops."""
_TRUSTED_COMPILERS = frozenset({"typing", "traceback"})
"""Callers whose ``compile``/``eval`` is expected: `typing` evaluating the annotation strings
of a registered task (decoding its arguments), `traceback` parsing a line of a source file
to mark an error's position."""


def _warm_up() -> None:
    """Load what a worker loads lazily whatever the rows, before the allow-list is taken:
    the redis client reads its own version (importlib.metadata, which imports the email
    parser) when it makes its first connection; afterward reads ``/proc/<pid>/stat`` as
    ASCII when it checks whether another worker on the host is alive."""
    import codecs
    import importlib.metadata

    codecs.lookup("ascii")
    for name in ("redis", "psycopg"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            importlib.metadata.version(name)


def _native_by_trusted() -> bool:
    """Whether the ``ctypes`` call being audited comes from a trusted caller."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("ctypes"):
        frame = frame.f_back
    return frame is not None and frame.f_globals.get("__name__") in _TRUSTED_NATIVE


def _compiled_by_trusted() -> bool:
    """Whether the ``compile``/``exec`` being audited was asked for by a trusted caller."""
    frame: FrameType | None = sys._getframe(2)  # 0: here, 1: the hook, 2: compile's caller
    while frame is not None and frame.f_globals.get("__name__") == "ast":
        frame = frame.f_back  # ast.parse compiles for its caller
    return frame is not None and frame.f_globals.get("__name__") in _TRUSTED_COMPILERS


def _install_audit(path: str) -> None:
    """Append to `path` what this process imports or executes from now on (see above),
    outside the modules loaded by now and the compiling done by `_TRUSTED_COMPILERS`."""
    _warm_up()
    allowed = frozenset(sys.modules)
    out = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (lives with the process)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "import":
            if args[0] not in allowed:
                out.write(f"{os.getpid()} import {args[0]}\n")
        elif event in ("exec", "compile"):
            if not _compiled_by_trusted():
                out.write(f"{os.getpid()} {event} {str(args)[:200]!r}\n")
        elif event.startswith(_RUNS_CODE):
            if event.startswith("ctypes.") and _native_by_trusted():
                return
            out.write(f"{os.getpid()} {event} {str(args)[:200]!r}\n")

    sys.addaudithook(hook)


if os.environ.get(LIBRARY_ENV):
    importlib.import_module(os.environ[LIBRARY_ENV])
if os.environ.get(AUDIT_ENV):
    _install_audit(os.environ[AUDIT_ENV])
