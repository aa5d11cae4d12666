"""The benchmark harness works (a smoke test: it checks the harness, never timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_the_comparison_runs_every_workload_for_afterward_and_writes_its_report(
    tmp_path: Path,
) -> None:
    # Given the harness, asked for afterward only, tiny sizes, one round, no plots
    out = tmp_path / "benchmarks.md"
    command = [
        sys.executable,
        "-m",
        "bench.compare",
        "--quick",
        "--rounds",
        "1",
        "--only",
        "afterward",
        "--no-plots",
        "--out",
        str(out),
        *("--workload", "enqueue_one", "--workload", "enqueue_bulk"),
        *("--workload", "throughput_1", "--workload", "latency", "--workload", "floors"),
    ]
    # When it runs
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    # Then every workload ran on every store, and the report and raw figures were written
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(out.with_suffix(".json").read_text())
    ran = {(r["store"], r["workload"]) for r in data["runs"]}
    workloads = {"enqueue_one", "enqueue_bulk", "throughput_1", "latency"}
    stores = ("sqlite", "postgres", "redis")
    assert ran == {(s, w) for s in stores for w in workloads} | {("machine", "floors")}
    assert data["meta"]["failures"] == {}
    report = out.read_text()
    assert "## Targets" in report and "### PostgreSQL" in report
    throughput = [r for r in data["runs"] if r["workload"] == "throughput_1"]
    assert all(r["figures"]["ran"] == 2000 and r["figures"]["rate"] > 0 for r in throughput)
    # And the worker's workloads ran at afterward's defaults and at its tuned setting, both
    # in the tables; the enqueue workloads at the defaults alone (the setting is the worker's)
    variants = {(r["variant"], r["workload"]) for r in data["runs"] if r["system"] == "afterward"}
    assert {v for v, w in variants if w in ("throughput_1", "latency")} == {"defaults", "tuned"}
    assert {v for v, w in variants if w.startswith("enqueue")} == {"defaults"}
    assert report.count("| **afterward** (tuned: concurrency=64) |") == 3
    # And the floors were measured, and the CPU the one-process runs kept busy is weighed
    (floors,) = [r["figures"] for r in data["runs"] if r["workload"] == "floors"]
    assert set(floors) == {
        "sqlite_commit_wal_us",
        "sqlite_commit_delete_us",
        "postgres_commit_us",
        "postgres_round_trip_us",
        "redis_round_trip_us",
        "redis_blocking_round_trip_us",
    }
    assert all(value > 0 for value in floors.values())
    cores = os.cpu_count() or 1
    assert all(0 < r["figures"]["cores_busy"] <= cores for r in throughput)
    assert report.count("| 2 worker processes ≥ 1.8x one") == 3


def test_the_memory_benchmark_samples_the_worker_until_every_task_ran(tmp_path: Path) -> None:
    # Given the memory benchmark, asked for a few tasks on SQLite
    out = tmp_path / "memory.md"
    command = [sys.executable, "-m", "bench.memory", "--tasks", "300", "--store", "sqlite"]
    # When it runs
    done = subprocess.run(
        [*command, "--markdown", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    # Then it wrote a row with the worker's memory (a real process has some)
    assert done.returncode == 0, done.stdout + done.stderr
    (row,) = [line for line in out.read_text().splitlines() if line.startswith("| sqlite")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "300"
    assert float(cells[3].split()[0]) > 10  # MiB at 10 % done
