"""How big each experiment runs: `CI` (minutes for all of them) or `FULL` (by hand)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CI", "FULL", "Size"]


@dataclass(frozen=True)
class Size:
    """Knobs shared by the experiments."""

    name: str
    storm_tasks: int
    """Kill storm: tasks of 1-200 ms (CI: 1-20 ms)."""
    storm_max_ms: float
    storm_kill_every: float
    """Seconds between SIGKILLs in the kill storm."""
    workers: int
    baseline: bool
    """Also run the experiment without faults, to compare throughput."""
    zombie_rounds: int
    long_tasks: int
    long_lease: float
    """Long tasks: the lease (tasks run 10 leases; half of them CPU-bound threads)."""
    graceful_tasks: int
    restart_tasks: int
    """Store restart: 5 ms tasks, the store restarted after a tenth of them ran."""
    web_requests: int
    """Web kill: requests per kill point (each killed with probability 0.25)."""
    disk_requests: int
    """Disk full: the most requests sent while filling the disk."""
    poison_normal: int
    """Poison: normal 1-20 ms tasks the poison tasks are mixed into."""
    poison_each: int
    """Poison: tasks of each kind (segfault, os._exit, memory hog, endless loop)."""
    hostile_rows: int
    """Hostile rows: rows written straight into the store (about a fifth valid)."""


CI = Size(
    name="ci",
    storm_tasks=600,
    storm_max_ms=20,
    storm_kill_every=1.0,
    workers=3,
    baseline=False,
    zombie_rounds=1,
    long_tasks=4,
    long_lease=3.0,
    graceful_tasks=40,
    restart_tasks=1500,
    web_requests=30,
    disk_requests=3000,
    poison_normal=300,
    poison_each=2,
    hostile_rows=100,
)
FULL = Size(
    name="full",
    storm_tasks=50_000,
    storm_max_ms=200,
    storm_kill_every=2.0,
    workers=4,
    baseline=True,
    zombie_rounds=5,
    long_tasks=16,
    long_lease=3.0,
    graceful_tasks=200,
    restart_tasks=20_000,
    web_requests=1_000,
    disk_requests=20_000,
    poison_normal=10_000,
    poison_each=5,
    hostile_rows=1_000,
)
