"""One run of one system on fresh stores, and a round of a workload for every system:
each run is `bench/peers/driver.py` in the system's own virtualenv, and a failure is
recorded, never ends the round."""

from __future__ import annotations

import json
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from .systems import System
from .venvs import python_of

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "bench" / "peers" / "driver.py"
REDIS = "redis://127.0.0.1:6379/9"
"""Peers get Redis database 9 (flushed before every run); afterward a prefix in it."""
POSTGRES = "postgresql://127.0.0.1:5432"


WEB_VARIANTS = ("none", "fastapi", "floor-commit", "floor-durable", "sqlite", "postgres", "redis")
"""afterward's endpoint variants; the peers that enqueue in the endpoint come after them."""


@dataclass(frozen=True)
class Run:
    """One workload's figures for one system on one store, in one round."""

    system: str
    store: str
    workload: str
    round: int
    figures: dict[str, float]
    variant: str = "defaults"
    """Which of the system's two `VARIANTS` (figures of a run before there were variants
    have none; `bench.report` reads them as one row per system)."""


class Stores:
    """Fresh stores per run: a SQLite file, a new PostgreSQL database, a flushed Redis db."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.databases: list[str] = []

    def url(self, system: str, store: str) -> str:
        name = f"aw_cmp_{uuid.uuid4().hex[:8]}"
        if store == "sqlite":
            return f"sqlite:///{self.tmp / name}.db"
        if store == "redis":
            subprocess.run(["redis-cli", "-n", "9", "flushdb"], check=True, capture_output=True)
            return f"{REDIS}?prefix={name}" if system == "afterward" else REDIS
        _psql(f"CREATE DATABASE {name}")
        self.databases.append(name)
        return f"{POSTGRES}/{name}"

    def drop(self) -> None:
        for name in self.databases:
            _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.databases.clear()
        subprocess.run(["redis-cli", "-n", "9", "flushdb"], check=False, capture_output=True)


def _psql(statement: str) -> None:
    subprocess.run(
        ["psql", "-q", "-h", "127.0.0.1", "-d", "postgres", "-c", statement],
        check=True,
        capture_output=True,
    )


def run_one(
    system: System,
    variant: str,
    store: str,
    workload: str,
    sizes: dict[str, int],
    stores: Stores,
) -> dict[str, float] | str:
    """The figures of one run of `system` at `variant`, or why it failed."""
    # throughput_1 / throughput_2: the driver's "throughput" with 1 or 2 worker processes
    name, _, procs = (
        workload.partition("_") if workload.startswith("throughput") else (workload, "", "1")
    )
    url = stores.url(system.name, store)
    with tempfile.NamedTemporaryFile(dir=stores.tmp, suffix=".ledger", delete=False) as f:
        ledger = f.name
    command = [
        str(python_of(system)),
        str(DRIVER),
        system.name,
        name,
        "--url",
        url,
        "--ledger",
        ledger,
        "--n",
        str(sizes[name]),
        "--processes",
        procs,
        "--budget",
        "30",
        *(["--setting", system.setting] if variant == "tuned" else []),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return "timed out"
    finally:
        stores.drop()
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1][:200]
    figures: dict[str, float] = json.loads(lines[-1])
    return figures


def web_round(
    n: int, tmp: Path, seconds: float, failures: dict[str, str], systems: list[System]
) -> list[Run]:
    """The lesson's endpoint under uvicorn + wrk, once per variant (see `bench.web`)."""
    from . import web

    runs = []
    names = {s.name for s in systems}
    for variant in (*WEB_VARIANTS, *(p for p in web.PEERS if p in names)):
        try:
            r = web.one_round(variant, tmp, seconds, 32)
        except (SystemExit, subprocess.CalledProcessError) as exc:
            failures[f"web/{variant}"] = str(exc)[:200]
            continue
        figures = {
            "rps": r.requests_per_s,
            "p50_ms": r.p50_ms,
            "p99_ms": r.p99_ms,
            "cpu_ms_per_request": r.cpu_ms_per_request,
            "cores_busy": r.cores_busy,
        }
        if r.tasks is not None:
            figures["tasks_done_share"] = r.tasks[0] / max(1, r.tasks[1])
        runs.append(Run("web", variant, "web", n, figures))
        print(f"round {n} web/{variant}: {r.requests_per_s:,.0f} req/s, p99 {r.p99_ms:.1f} ms")
    return runs


def floors_round(
    n: int, sizes: dict[str, int], stores: Stores, failures: dict[str, str]
) -> list[Run]:
    """The stores' own floors (`bench.floors`), as many operations as `enqueue_one`; a
    failure is recorded in `failures` like any other run's, never ends the run."""
    from . import floors

    try:
        url = stores.url("floors", "postgres")
        figures = floors.measure(stores.tmp, url, REDIS, sizes["enqueue_one"])
    except Exception as exc:  # a server gone mid-run must not lose the hour measured so far
        failures[f"floors/{n}"] = f"{type(exc).__name__}: {exc}"
        print(f"round {n} floors: FAILED {failures[f'floors/{n}']}", flush=True)
        return []
    finally:
        stores.drop()
    print(f"round {n} floors: " + ", ".join(f"{k} {v:,.1f}" for k, v in figures.items()))
    return [Run("floors", "machine", "floors", n, figures)]


def systems_round(
    n: int,
    workload: str,
    systems: list[System],
    variants: list[str],
    sizes: dict[str, int],
    stores: Stores,
    failures: dict[str, str],
) -> list[Run]:
    """One workload for every system, variant and store; a failure is recorded in `failures`
    (under the row's label) and the round goes on."""
    runs = []
    for system in systems:
        for store in system.stores:  # the two variants back to back, on each store
            for variant in (v for v in variants if system.runs(v, workload)):
                outcome = run_one(system, variant, store, workload, sizes, stores)
                key = f"{system.label(variant)}/{store}/{workload}"
                if isinstance(outcome, str):
                    failures[key] = outcome
                    print(f"round {n} {key}: FAILED {outcome}", flush=True)
                    continue
                runs.append(Run(system.name, store, workload, n, outcome, variant))
                shown = ", ".join(f"{k} {v:,.1f}" for k, v in outcome.items())
                print(f"round {n} {key}: {shown}", flush=True)
    return runs
