"""The systems `bench.compare` runs: how each installs, the stores it runs on, and its two
variants (its documented defaults and one tuned setting), stated once for the harness, the
peers' drivers and the report."""

from __future__ import annotations

from dataclasses import dataclass

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
