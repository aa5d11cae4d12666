"""Worker identities: a holder is judged dead by its pid only in our own PID space."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from afterward.worker import identity
from afterward.worker.identity import (
    WorkerIdentity,
    dead_local_workers,
    new_worker_id,
    parse_worker_id,
    pid_space,
)

HOST = socket.gethostname()
linux_only = pytest.mark.skipif(pid_space() is None, reason="no /proc boot id or PID namespace")


def gone_pid() -> int:
    """The pid of a process that has ended and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_an_identity_names_host_pid_and_space() -> None:
    worker_id = new_worker_id()
    assert parse_worker_id(worker_id) == WorkerIdentity(HOST, os.getpid(), pid_space())
    assert len(worker_id) <= len(HOST) + 32


def test_two_identities_of_one_process_differ() -> None:
    assert new_worker_id() != new_worker_id()


@pytest.mark.parametrize(
    ("worker_id", "parsed"),
    [
        ("web-1/42/0a1b2c3d4e5f.deadbeef", WorkerIdentity("web-1", 42, "0a1b2c3d4e5f")),
        ("web-1/42/deadbeef", WorkerIdentity("web-1", 42, None)),  # before spaces
        ("a/b.example/42/.deadbeef", WorkerIdentity("a/b.example", 42, None)),
        ("web-1/x42/deadbeef", None),
        ("web-1", None),
        ("", None),
    ],
)
def test_parse(worker_id: str, parsed: WorkerIdentity | None) -> None:
    assert parse_worker_id(worker_id) == parsed


@linux_only
def test_a_gone_process_of_our_space_is_dead() -> None:
    holder = f"{HOST}/{gone_pid()}/{pid_space()}.00000000"
    assert dead_local_workers([holder]) == [holder]


@linux_only
def test_a_zombie_of_our_space_is_dead() -> None:
    child = subprocess.Popen(["true"])
    stat = Path(f"/proc/{child.pid}/stat")
    while stat.read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.005)
    holder = f"{HOST}/{child.pid}/{pid_space()}.00000000"
    try:
        assert dead_local_workers([holder]) == [holder]
    finally:
        child.wait()


@linux_only
def test_live_processes_and_this_one_are_not_dead() -> None:
    space = pid_space()
    live = subprocess.Popen(["sleep", "30"])
    try:
        holders = [f"{HOST}/{live.pid}/{space}.00000000", new_worker_id()]
        assert dead_local_workers(holders) == []
    finally:
        live.kill()
        live.wait()


@linux_only
def test_a_gone_pid_is_left_to_its_lease_unless_host_and_space_are_ours() -> None:
    pid, space = gone_pid(), pid_space()
    other_space = "0" * 12 if space != "0" * 12 else "1" * 12
    holders = [
        f"{HOST}/{pid}/{other_space}.00000000",  # another PID namespace, or another boot
        f"{HOST}/{pid}/00000000",  # an identity from before spaces
        f"other-host/{pid}/{space}.00000000",
        f"{HOST}/{pid}",
    ]
    assert dead_local_workers(holders) == []


@linux_only
@pytest.mark.parametrize("unreadable", ["_BOOT_ID", "_PID_NAMESPACE"])
def test_without_a_space_nothing_is_judged_by_pid(
    unreadable: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given a holder that would be dead here, and a platform with no /proc (macOS)
    holder = f"{HOST}/{gone_pid()}/{pid_space()}.00000000"
    monkeypatch.setattr(identity, unreadable, str(tmp_path / "missing"))
    # Then this process names no space, and judges no holder by its pid
    assert pid_space() is None
    assert parse_worker_id(new_worker_id()) == WorkerIdentity(HOST, os.getpid(), None)
    assert dead_local_workers([holder]) == []


def test_a_foreign_proc_is_not_read_for_zombies(monkeypatch: pytest.MonkeyPatch) -> None:
    # /proc of another namespace: /proc/<pid> there is some other process, maybe a zombie
    monkeypatch.setattr(identity, "_PROC_SELF", "/nonexistent")
    assert identity.proc_is_ours() is False
    assert identity._alive(os.getpid(), own_proc=False) is True


can_unshare = pytest.mark.skipif(
    shutil.which("unshare") is None or os.geteuid() != 0 or pid_space() is None,
    reason="needs root, Linux and unshare(1) to make a PID namespace",
)


@can_unshare
def test_a_worker_in_another_pid_namespace_sees_us_alive_and_is_seen_alive() -> None:
    # Given this process's identity, and a gone pid of our space
    ours, gone = new_worker_id(), f"{HOST}/{gone_pid()}/{pid_space()}.00000000"
    # When a process with the same hostname in a new PID namespace judges them
    script = (
        "import sys\n"
        "from afterward.worker.identity import dead_local_workers, new_worker_id\n"
        "print(new_worker_id())\n"
        "print(','.join(dead_local_workers(sys.argv[1:])))\n"
    )
    out = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", script, ours, gone],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.splitlines()
    theirs = parse_worker_id(out[0])
    # Then neither holder is dead to it (our pids mean nothing in its namespace)
    assert out[1] == ""
    # And its identity names another space, so we leave it to its lease too
    assert theirs is not None and theirs.host == HOST and theirs.pid == 1
    assert theirs.space not in (None, pid_space())
    assert dead_local_workers([out[0]]) == []
