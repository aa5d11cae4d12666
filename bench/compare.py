"""afterward beside its peers: one harness, the same machine, servers and workload, one run.

    .venv/bin/python -m bench.compare [--rounds 3] [--quick] [--only afterward --only arq ...]
                                      [--workload throughput ...] [--variant tuned]
                                      [--out docs/benchmarks.md]

Installs each peer, pinned, into its own virtualenv under ``.bench/venvs/`` (once), starts
nothing but uses the local PostgreSQL and Redis, and runs every workload for afterward (each
store) and each peer, each at two variants: its documented defaults, and one tuned setting
stated in `SYSTEMS`. The rounds are interleaved (every system and variant once per round),
so a slow moment of the machine hits all of them. Writes the tables (median round, min-max) to
``docs/benchmarks.md``, the raw figures to ``docs/benchmarks.json`` and the plots as PNG
beside them. Each run is `bench/peers/driver.py` in the system's own virtualenv; every task
is a no-op that appends one line to a ledger file (the same cost for everyone).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENVS = ROOT / ".bench" / "venvs"
DRIVER = ROOT / "bench" / "peers" / "driver.py"
REDIS = "redis://127.0.0.1:6379/9"
"""Peers get Redis database 9 (flushed before every run); afterward a prefix in it."""
POSTGRES = "postgresql://127.0.0.1:5432"


VARIANTS = ("defaults", "tuned")
WORKER_WORKLOADS = ("throughput_1", "throughput_2", "latency")
"""The workloads a worker runs: a tuned setting of the worker alone changes only these."""


@dataclass(frozen=True)
class System:
    """A task queue under test: how to install it, on which stores it runs, and its two
    variants: its documented defaults, and one tuned setting."""

    name: str
    requirements: tuple[str, ...]
    stores: tuple[str, ...]
    defaults: str
    """The defaults variant: what the harness sets beyond the store's URL and the benchmark's
    task, and the defaults that matter here (stated in the report)."""
    tuned: tuple[str, str]
    """The tuned variant's one setting, (name, value), applied by ``bench/peers/peer_<name>.py``
    (`clients.tuned`): what a competent user would pick for short tasks on this 2-core
    machine. The number of worker processes is the workload's (1 or 2) in both variants."""
    why: str
    """Why that setting (stated in the report)."""
    tunes_producer: bool = False
    """Whether the setting changes the producer too; if not, the tuned variant runs only the
    `WORKER_WORKLOADS` (its enqueue figures would be the defaults')."""

    @property
    def setting(self) -> str:
        """The tuned setting as ``driver.py --setting`` takes it: ``NAME=VALUE``."""
        return "=".join(self.tuned)

    def label(self, variant: str) -> str:
        """The row's name in the report, e.g. ``pgqueuer (tuned: batch_size=100)``."""
        return (
            f"{self.name} (defaults)"
            if variant == "defaults"
            else f"{self.name} (tuned: {self.setting})"
        )

    def runs(self, variant: str, workload: str) -> bool:
        """Whether `variant` runs `workload` (the tuned variant only where it differs)."""
        return variant == "defaults" or self.tunes_producer or workload in WORKER_WORKLOADS


SYSTEMS = (
    System(
        "afterward",
        (),
        ("sqlite", "postgres", "redis"),
        "execution='workers'; `afterward worker --processes N`; concurrency 8 (its default)",
        ("concurrency", "64"),
        "an async task holds no thread while it awaits: more at once per process overlaps the "
        "store's round trips (8 to 64 lifted Redis in an earlier session, bench/analysis.md)",
    ),
    System(
        "arq",
        ("arq==0.28.0", "hiredis"),
        ("redis",),
        "WorkerSettings with the task and the Redis URL; one `arq` process per process (it has "
        "no supervisor); max_jobs 10 (its default)",
        ("max_jobs", "100"),
        "async tasks: more jobs in flight per process, and each poll reads up to 5x max_jobs",
    ),
    System(
        "saq",
        ("saq[hiredis]==0.26.4", "typing_extensions"),
        ("redis",),
        "settings with the queue and the task; `saq --workers N`; concurrency 10 (its default)",
        ("concurrency", "100"),
        "async tasks: each slot dequeues on its own, so more slots overlap more round trips",
    ),
    System(
        "huey",
        ("huey==3.5.4", "redis", "hiredis"),
        ("redis", "sqlite"),
        "RedisHuey / SqliteHuey; `huey_consumer` as is (1 worker thread), `-k process -w 2` "
        "for 2 processes",
        ("workers", "8"),
        "`-k thread -w 8` in each consumer process: its consumer runs one thread by default, and "
        "a thread waits on each round trip",
    ),
    System(
        "dramatiq",
        ("dramatiq[redis]==2.2.1", "hiredis"),
        ("redis",),
        "RedisBroker; `dramatiq --processes N` (its default: one per core); 8 threads (its "
        "default); the actor's retries at their default",
        ("threads", "32"),
        "its Redis consumer fetches 2 messages per thread at a time: more threads, fewer round "
        "trips per message (32 ran 1.4-2.2x the default 8 in a quick check; 64 no better)",
    ),
    System(
        "taskiq",
        ("taskiq==0.13.0", "taskiq-redis==1.2.4"),
        ("redis",),
        "RedisStreamBroker (taskiq-redis's README: a stream, acknowledged); `taskiq worker "
        "--workers N` (its default: 2)",
        ("broker", "ListQueueBroker"),
        "taskiq-redis's plain list (LPUSH / BRPOP), for users who do not need acknowledgements "
        "(a killed worker loses the task it holds)",
        tunes_producer=True,
    ),
    System(
        "celery",
        ("celery[redis]==5.7.0", "hiredis"),
        ("redis",),
        "Redis broker; prefork pool, `-c N` (its default: one per core); acknowledged on "
        "receipt and prefetch multiplier 4 (its defaults); gossip and mingle off (one worker)",
        ("prefetch_multiplier", "64"),
        "Celery's optimizing guide: for many short tasks a large multiplier, 'say 64 or 128'",
    ),
    System(
        "rq",
        ("rq==3.0.0", "hiredis"),
        ("redis",),
        "`rq worker`, one per process: it forks a work horse per job (its default)",
        ("worker_class", "rq.worker.SimpleWorker"),
        "no fork per job, which is most of a short job's cost (a crashing job takes the worker "
        "down with it)",
    ),
    System(
        "procrastinate",
        ("procrastinate==3.10.0", "psycopg[binary]"),
        ("postgres",),
        "PsycopgConnector; `procrastinate worker`, one per process; concurrency 1 (its default)",
        ("concurrency", "10"),
        "async tasks: its default runs one job at a time per worker",
    ),
    System(
        "pgqueuer",
        ("pgqueuer==1.6.0", "asyncpg"),
        ("postgres",),
        "`pgqueuer.run(factory)` (what `pgq run` calls), one per process; batch_size 10 (its "
        "default)",
        ("batch_size", "100"),
        "ten times fewer dequeue queries per job (the issue's example)",
    ),
)

FULL = {"enqueue_one": 2000, "enqueue_bulk": 20_000, "throughput": 20_000, "latency": 200}
QUICK = {"enqueue_one": 300, "enqueue_bulk": 2000, "throughput": 2000, "latency": 50}
WORKLOADS = (
    "enqueue_one",
    "enqueue_bulk",
    "throughput_1",
    "throughput_2",
    "latency",
    "web",
    "floors",
)
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


def python_of(system: System) -> Path:
    """The system's virtualenv Python, created and installed on first use."""
    if system.name == "afterward":
        return Path(sys.executable)
    venv = VENVS / system.name
    python = venv / "bin" / "python"
    marker = venv / "installed.txt"
    wanted = "\n".join(system.requirements)
    if not python.exists() or not marker.exists() or marker.read_text() != wanted:
        print(f"installing {system.name} into {venv} …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *system.requirements], check=True
        )
        marker.write_text(wanted)
    return python


def web_python_of(system: System) -> Path:
    """The system's Python with FastAPI and uvicorn added, at the versions afterward has
    here, so every endpoint runs on the same web stack (`bench.web`'s peer variants)."""
    from importlib.metadata import version

    python = python_of(system)
    if system.name == "afterward":
        return python
    wanted = f"fastapi=={version('fastapi')}\nuvicorn=={version('uvicorn')}"
    marker = python.parent.parent / "web.txt"
    if not marker.exists() or marker.read_text() != wanted:
        print(f"adding FastAPI and uvicorn to {system.name}'s virtualenv …", flush=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *wanted.split()], check=True
        )
        marker.write_text(wanted)
    return python


def versions(system: System) -> str:
    """The installed version of the system itself."""
    package = "afterward" if system.name == "afterward" else system.requirements[0]
    name = package.split("[")[0].split("=")[0]
    out = subprocess.run(
        [str(python_of(system)), "-m", "pip", "show", name], capture_output=True, text=True
    ).stdout
    return next((line.split()[1] for line in out.splitlines() if line.startswith("Version:")), "?")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--only", action="append", help="systems to run (default: all)")
    parser.add_argument("--workload", action="append", choices=WORKLOADS)
    parser.add_argument(
        "--variant", action="append", choices=VARIANTS, help="variants to run (default: both)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    systems = [s for s in SYSTEMS if not args.only or s.name in args.only]
    workloads = args.workload or list(WORKLOADS)
    variants = args.variant or list(VARIANTS)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    runs: list[Run] = []
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        stores = Stores(Path(tmp))
        for n in range(1, args.rounds + 1):
            for workload in workloads:
                if workload == "web":
                    runs += web_round(n, Path(tmp), 5.0 if args.quick else 10.0, failures, systems)
                    continue
                if workload == "floors":
                    runs += floors_round(n, sizes, stores, failures)
                    continue
                runs += systems_round(n, workload, systems, variants, sizes, stores, failures)
    meta = {
        "date": started,
        "machine": f"{platform.node()} ({platform.machine()}, {os.cpu_count()} cores)",
        "cores": os.cpu_count() or 1,
        "python": platform.python_version(),
        "command": "python -m bench.compare " + " ".join(sys.argv[1:]),
        "sizes": sizes,
        "versions": {s.name: versions(s) for s in systems},
        "settings": {
            s.name: {"defaults": s.defaults, "tuned": s.setting, "why": s.why} for s in systems
        },
        "failures": failures,
    }
    data = {"meta": meta, "runs": [asdict(r) for r in runs]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    from .report import write_report

    write_report(data, args.out, plots=not args.no_plots)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
