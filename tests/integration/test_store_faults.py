"""Many worker processes on one store, with SIGKILLs: nothing lost, chains kept in order.

Runs on every store (sqlite, postgres, redis). Prints the figures (pytest -s shows them).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict
from pathlib import Path

import pytest

from afterward import Afterward, JobState
from afterward.jobs import NewJob

from . import crash_app
from .procs import kill, start_worker, stop

pytestmark = pytest.mark.slow

TARGET = "integration.crash_app:app"
WORKERS = 4
CHAINS = 1667
LINKS = 3


async def _enqueue_chains(afterward: Afterward) -> int:
    total = 0
    for chain in range(CHAINS):
        links: list[NewJob] = [
            afterward.prepare(crash_app.step, (chain, i), {}) for i in range(LINKS)
        ]
        total += len(await afterward.enqueue_chain(links, reserve=False))
    await afterward.aclose()
    return total


def _succeeded(url: str) -> int:
    async def count() -> int:
        afterward = Afterward(url=url, execution="workers")
        await afterward.open()
        try:
            counts = await afterward.store.counts()
        finally:
            await afterward.aclose()
        return counts.get(("default", JobState.SUCCEEDED), 0)

    return asyncio.run(count())


def test_workers_killed_every_2s_lose_nothing_and_keep_chain_order(
    store_url: str, tmp_path: Path
) -> None:
    # Given 5,001 tasks in chains of 3 and four worker processes
    total = asyncio.run(_enqueue_chains(Afterward(url=store_url, execution="workers")))
    workers = [start_worker(tmp_path, TARGET, store_url) for _ in range(WORKERS)]
    rng = random.Random(11)
    kills = 0
    started = time.monotonic()
    try:
        # When one random worker is SIGKILLed every 2 s (and replaced) until all succeed
        deadline = started + 240
        while _succeeded(store_url) < total:
            assert time.monotonic() < deadline, "tasks did not all succeed in time"
            time.sleep(2)
            victim = rng.randrange(WORKERS)
            kill(workers[victim])
            kills += 1
            workers[victim] = start_worker(tmp_path, TARGET, store_url)
        elapsed = time.monotonic() - started
    finally:
        for worker in workers:
            stop(worker)
    # Then every task ran, and within each chain each link first ran after the one before
    ledger = (tmp_path / "chains.txt").read_text().split()
    first_seen: dict[int, dict[int, int]] = defaultdict(dict)
    for position, entry in enumerate(ledger):
        chain, index = map(int, entry.split(":"))
        first_seen[chain].setdefault(index, position)
    ran = {(c, i) for c, links in first_seen.items() for i in links}
    lost = total - len(ran)
    duplicates = len(ledger) - len(ran)
    out_of_order = sum(
        1
        for links in first_seen.values()
        if [links[i] for i in sorted(links)] != sorted(links.values())
    )
    store = store_url.split(":", 1)[0]
    print(
        f"\n{store}: {total} tasks, {WORKERS} workers, {kills} SIGKILLs: lost {lost}, "
        f"ran twice {duplicates}, chains out of order {out_of_order}, {elapsed:.1f} s"
    )
    assert lost == 0
    assert out_of_order == 0
