"""scripts/demo on a fresh copy of the repository: it installs what it needs, answers, prints
the CLI line that reads its store, and a second start skips the install and answers in
seconds.

The copy holds the files git would commit from this work tree (tracked, and untracked ones
not ignored), without .venv/ or .demo/, so the first start installs from nothing, as on a
fresh clone.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from .procs import free_port, wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FIRST_START = 300  # seconds: a virtualenv and the package's dependencies from the registry
SECOND_START = 5  # seconds: the acceptance bound (about 2.5 s measured on this machine)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """The repository's committable files, copied as they are in the work tree."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    dest = tmp_path / "afterward"
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the work tree is not copied
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture
def demo(clone: Path) -> Iterator[DemoRunner]:
    runner = DemoRunner(clone)
    yield runner
    runner.stop()


class DemoRunner:
    """Starts scripts/demo in its own process group, as a user would in a fresh shell."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "demo.log"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AFTERWARD_", "VIRTUAL"))}
        env.pop("PYTHONPATH", None)
        env["PORT"] = str(self.port)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(self.root / "scripts" / "demo")],
                cwd=self.root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"scripts/demo exited {self.proc.returncode}:\n{self.output()}")
        try:
            url = f"http://127.0.0.1:{self.port}/tasks"
            response = httpx.post(url, params={"title": "Ship release"}, timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM to the whole group (the install, or uvicorn once exec'd), then reap."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def cli_line(output: str) -> list[str]:
    """The command the demo printed for reading its store."""
    lines = [line for line in output.splitlines() if " status --url " in line]
    assert len(lines) == 1, output
    return shlex.split(lines[0])


def test_demo_starts_from_nothing_then_again_within_seconds(demo: DemoRunner) -> None:
    demo.start()
    first = wait_until(demo.answers, FIRST_START, "the demo's first start to answer")

    command = cli_line(demo.output())
    assert command[0] == str(demo.root / ".venv" / "bin" / "afterward")
    assert command[-1] == f"sqlite:///{demo.root}/.demo/afterward.db"
    status = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd="/")
    assert status.returncode == 0, status.stderr
    assert "default" in status.stdout  # the queue of the task just created: the demo's store

    installed = sorted(p.name for p in (demo.root / ".venv").glob(".installed-*"))
    assert installed == [".installed-demo"]  # the demo group only, not the test tools
    venv = demo.root / ".venv" / "bin"
    assert (venv / "uvicorn").exists()
    assert not (venv / "pytest").exists()
    demo.stop()

    started = time.monotonic()
    demo.start()
    second = wait_until(demo.answers, SECOND_START, "the demo's second start to answer")
    print(f"first start answered after {first:.1f} s, second after {second:.1f} s")
    assert time.monotonic() - started < SECOND_START
    assert cli_line(demo.output()) == command
