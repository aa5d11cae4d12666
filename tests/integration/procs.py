"""Real processes for crash tests: uvicorn servers and afterward workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx

TESTS = Path(__file__).resolve().parents[1]
"""On the children's path, so they import `integration.crash_app` as the tests do."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(cwd: Path, url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["AFTERWARD_URL"] = url
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return env


def start_uvicorn(cwd: Path, target: str, port: int, url: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", target, "--port", str(port), "--log-level", "warning"],
        cwd=cwd,
        env=env_for(cwd, url),
    )
    wait_until(lambda: _answers(port), 20, "uvicorn to answer")
    return proc


def start_worker(cwd: Path, target: str, url: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "afterward", "worker", target, "--log-level", "WARNING", *args],
        cwd=cwd,
        env=env_for(cwd, url),
    )


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `condition` until true; return the seconds it took. Fails after `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL and reap (a zombie would still look alive)."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
