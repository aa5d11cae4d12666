"""The idle benchmark's harness works (a smoke test: it checks the harness, never timings)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_the_idle_benchmark_measures_a_real_idle_worker_on_sqlite() -> None:
    # Given the idle benchmark, asked for a 2 s window on SQLite and one start
    command = [sys.executable, "-m", "bench.idle", "--stores", "sqlite", "--seconds", "2"]
    options = ["--warmup", "0.5", "--tries", "1", "--json"]
    # When it runs
    done = subprocess.run(
        [*command, *options], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    # Then it watched a live worker for the window and saw the task start
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)["stores"]["sqlite"]
    assert result["seconds"] >= 2
    assert result["threads"] >= 1 and result["wakeups_per_s"] > 0
    assert result["cpu_ms_per_s"] >= 0
    assert len(result["start_ms"]["all"]) == 1 and result["start_ms"]["p50"] > 0
