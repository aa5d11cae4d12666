"""The README's demo command, run as a user runs it: `scripts/demo`, a real uvicorn.

(The README's other command, `scripts/test`, is what `.ci/run` calls on a clean clone.)
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx2 as httpx
import pytest

from .procs import free_port, stop, wait_until

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None


def test_scripts_demo_serves_the_lesson_app_and_runs_its_tasks(tmp_path: Path) -> None:
    # Given the README's demo command on a free port (it installs into .venv first)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PORT": str(port)}
    env.pop("AFTERWARD_URL", None)
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", str(ROOT / "scripts" / "demo")], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    try:
        wait_until(lambda: _get(base + "/") is not None, 180, "the demo to answer")
        # When the page is opened and a task is created
        page = _get(base + "/")
        created = httpx.post(base + "/tasks", params={"title": "Ship release"}, timeout=10)
        ids = created.json()["tasks"]

        # Then the page is the demo's, and both tasks of the request end succeeded
        def both_done() -> bool:
            listed = _get(base + "/tasks")
            states = {t["id"]: t["state"] for t in listed.json()} if listed else {}
            return all(states.get(i) == "succeeded" for i in ids)

        wait_until(both_done, 30, "the demo's tasks to succeed")
        assert page is not None and "afterward demo" in page.text
        assert created.status_code == 200 and len(ids) == 2
        # And they were stored where the demo says: afterward.db in .demo/
        assert (ROOT / ".demo" / "afterward.db").exists()
    finally:
        code = stop(proc)
        output = log.read_text(errors="replace")
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it (exit by the signal)
    assert code in (0, -signal.SIGTERM), output
    assert "Traceback" not in output, output
