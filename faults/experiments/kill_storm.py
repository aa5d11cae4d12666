"""Worker kill storm: short tasks through N worker processes; a random worker is SIGKILLed
every few seconds and replaced, as a supervisor would. Lost must be 0."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from .. import app
from ..harness import Fleet, Result, enqueue, recovery_times, store_url, wait_finished
from ..ledger import Ledger
from ..sizes import Size

NAME = "1 worker kill storm"


def _workload(size: Size, seed: int) -> list[tuple[object, tuple[str, float]]]:
    rng = random.Random(seed)
    return [
        (app.work, (f"t{n}", rng.uniform(1, size.storm_max_ms))) for n in range(size.storm_tasks)
    ]


def _one_run(kind: str, folder: Path, size: Size, *, kills: bool) -> tuple[Result, str]:
    folder.mkdir(parents=True, exist_ok=True)
    url = store_url(kind, folder)
    ledger = Ledger(folder / "ledger.db")
    total = asyncio.run(enqueue(url, _workload(size, seed=1)))  # type: ignore[arg-type]
    fleet = Fleet(url, folder, ledger, size.workers, ["--concurrency", "8"])
    rng = random.Random(2)
    started = time.monotonic()
    try:
        while kills and ledger.count() < total:
            time.sleep(size.storm_kill_every)
            fleet.kill_random(rng)
        wait_finished(url, total, timeout=600)
        seconds = time.monotonic() - started
    finally:
        fleet.stop()
    runs = ledger.runs()
    result = Result(
        experiment=NAME,
        store=kind,
        accepted=total,
        lost=sum(1 for n in range(total) if runs[f"t{n}"] == 0),
        twice=sum(1 for c in runs.values() if c > 1),
        seconds=seconds,
        recovery=asyncio.run(recovery_times(url, fleet.kills)),
        checks={"workers SIGKILLed": len(fleet.kills) > 0} if kills else {},
    )
    return result, url


def run(kind: str, folder: Path, size: Size) -> tuple[Result, list[str]]:
    """Run the storm (and, at full size, a fault-free baseline); return the result and the
    store URLs used (for cleanup)."""
    result, url = _one_run(kind, folder / "storm", size, kills=True)
    urls = [url]
    if size.baseline:
        baseline, base_url = _one_run(kind, folder / "baseline", size, kills=False)
        result.baseline_seconds = baseline.seconds
        urls.append(base_url)
    result.notes = f"{len(result.recovery)} lost attempts re-run"
    return result, urls
