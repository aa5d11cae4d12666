"""`afterward worker` on an app that cannot start ends at once, saying why (issue 18).

Real worker commands, with one process and with a supervisor of two, on apps written to a
temporary folder: a module that raises at import, one that imports a package that is not
installed, a module or an attribute that does not exist, an empty target. Each ends with a
non-zero code within 10 s and the import's traceback or uvicorn's message; children that
fail to boot after the supervisor's own check passed stop it with "failed to boot".
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from uvicorn.importer import ImportFromStringError, import_from_string

from afterward.errors import ConfigurationError
from afterward.worker.loading import import_target

from .procs import env_for

pytestmark = pytest.mark.slow

APPS = {
    "raising.py": "def helper():\n    raise RuntimeError('boom at import')\n\n\nhelper()\n",
    "needs_missing.py": "import os\nimport afterward_no_such_package_xyz\n",
    "goodapp.py": (
        "from fastapi import FastAPI\n"
        "from afterward import Afterward\n"
        "afterward = Afterward()\n"
        "app = FastAPI(lifespan=afterward.lifespan)\n"
    ),
}

BROKEN = {
    "module raises": (
        "raising:app",
        [
            'importing module "raising" raised RuntimeError:',
            "Traceback (most recent call last):",
            'raising.py", line 5, in <module>',
            'raising.py", line 2, in helper',
            "RuntimeError: boom at import",
        ],
    ),
    "module imports a missing package": (
        "needs_missing:app",
        [
            'importing module "needs_missing" raised ModuleNotFoundError:',
            'needs_missing.py", line 2, in <module>',
            "No module named 'afterward_no_such_package_xyz'",
        ],
    ),
    "missing module": ("nosuchmod:app", ['Could not import module "nosuchmod"']),
    "missing attribute": (
        "goodapp:nosuch",
        ['Attribute "nosuch" not found in module "goodapp".'],
    ),
    "empty target": ("", ['Import string "" must be in format "<module>:<attribute>"']),
    "no attribute": ("goodapp", ['Import string "goodapp" must be in format']),
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name, text in APPS.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def run_worker(folder: Path, *args: str) -> tuple[int, str, float]:
    """Run `afterward worker ARGS` to its end (at most 30 s): code, output, seconds."""
    env = env_for(folder, f"sqlite:///{folder / 'tasks.db'}")
    env["COLUMNS"] = "250"  # error lines unwrapped
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "afterward", "worker", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


@pytest.mark.parametrize("processes", ["1", "2"])
@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_app_ends_the_worker_at_once_saying_why(
    folder: Path, case: str, processes: str
) -> None:
    target, expected = BROKEN[case]
    # Given a worker command on a broken app, When it runs
    code, output, seconds = run_worker(folder, target, "--processes", processes)
    print(f"{case}, --processes {processes}: exit code {code} after {seconds:.2f} s")
    # Then it ends with an error within 10 s, having started no worker process
    assert code != 0, output
    assert seconds < 10, output
    assert "worker process" not in output, output
    # And it says why: the import's traceback, or uvicorn's message on one line
    for piece in expected:
        assert piece in output, output
    if "Traceback" not in expected[0] and "raised" not in expected[0]:
        assert "Traceback" not in output, output
        assert output.startswith("error: ") and output.count("\n") == 1, output


def test_processes_that_fail_to_boot_stop_the_supervisor(folder: Path) -> None:
    # Given an app the supervisor loads, but that its processes cannot (too little memory)
    # When two processes run it
    code, output, seconds = run_worker(
        folder, "goodapp:app", "--processes", "2", "--max-memory", "16M"
    )
    print(f"failed boots: exit code {code} after {seconds:.2f} s")
    # Then the supervisor stops after a few failed starts, with the cause, within 10 s
    assert code == 1, output
    assert seconds < 10, output
    assert "too little for this worker to even load goodapp:app" in output
    assert "failed to boot: 3 in a row ended before they were ready" in output
    assert output.count("started") == 4  # 2, then 1 for each of the first 2 failures


@pytest.mark.parametrize(
    "target",
    ["", "goodapp", ":app", "nosuchmod:app", "goodapp:nosuch", "goodapp:afterward.nosuch"],
)
def test_targets_are_refused_in_uvicorn_s_words(
    folder: Path, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(folder))
    # Given uvicorn's message for a target it refuses
    with pytest.raises(ImportFromStringError) as uvicorns:
        import_from_string(target)
    # Then afterward refuses it with the same message
    with pytest.raises(ConfigurationError) as ours:
        import_target(target)
    assert str(ours.value).startswith(str(uvicorns.value).rstrip(".")), ours.value


def test_a_target_uvicorn_accepts_is_accepted(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(folder))
    # Given a dotted attribute, as uvicorn accepts it
    module, found = import_target("goodapp:afterward.registry")
    # Then it is the same object
    assert found is import_from_string("goodapp:afterward.registry")
    assert module.__name__ == "goodapp"
