"""Finding a process's descendants, and signalling only the process that was found."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from afterward.worker import descendants as module
from afterward.worker.descendants import descendants

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="descendants come from /proc")


def children_of(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_descendants_are_children_and_their_children_not_zombies() -> None:
    # Given a shell with a child of its own, and a child that has exited (a zombie)
    shell = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    zombie = subprocess.Popen(["true"])
    try:
        while not children_of(shell.pid):
            time.sleep(0.005)
        (grandchild,) = children_of(shell.pid)
        while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            time.sleep(0.005)
        # Then the shell and its child are found, with their start times; the zombie is not
        found = descendants()
        assert {shell.pid, grandchild} <= set(found)
        assert zombie.pid not in found
        assert found[shell.pid] == module._stat(shell.pid)[2]  # type: ignore[index]
        # And from the shell down, only its child
        assert set(descendants(shell.pid)) == {grandchild}
    finally:
        shell.kill()
        shell.wait()
        zombie.wait()


def test_a_process_is_signalled_only_if_its_start_time_matches() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        started = descendants()[child.pid]
        # A different start time: another process under a reused pid; left alone
        assert module._signal(child.pid, started + 1, signal.SIGTERM) is False
        assert child.poll() is None
        assert module._signal(child.pid, started, signal.SIGTERM) is True
        assert child.wait(5) == -signal.SIGTERM
        # Gone (a zombie, then reaped): nothing to signal
        assert module._signal(child.pid, started, signal.SIGTERM) is False
    finally:
        child.kill()
        child.wait()


def test_no_descendants_where_proc_shows_another_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        monkeypatch.setattr(module, "proc_is_ours", lambda: False)
        assert descendants() == {}
    finally:
        child.kill()
        child.wait()
