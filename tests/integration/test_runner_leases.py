"""The runner against a real SQLite store: leases, graceful stops, suspects, and
taking tasks ahead while tasks run short."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from afterward import Afterward, JobState, Outcome
from afterward.worker import slots
from afterward.worker.slots import SHORT

from . import apps, runners
from .runners import other_runner

# pytest finds a shared fixture by a module-level name in the test module
afterward = runners.afterward


async def test_cpu_bound_task_keeps_its_lease_past_the_lease_time(afterward: Afterward) -> None:
    # Given a runner with a 1.5 s lease and a plain function burning CPU for 3 leases
    # (shorter leases are starved by a CPU-bound thread on a loaded machine: the docs ask
    # for a few seconds at least, docs/reliability.md experiment 5)
    holder = other_runner(afterward, lease=1.5)
    rival = other_runner(afterward, lease=1.5)
    task_id = await afterward.enqueue(apps.burns_cpu, 4.5)
    apps.EVENTS.clear()
    stop = asyncio.Event()
    # When the holder runs it while a rival keeps looking for expired leases
    running = asyncio.create_task(holder.run(stop))
    deadline = time.monotonic() + 60
    while (job := await afterward.get(task_id)).state is not JobState.SUCCEEDED:
        assert job.state is not JobState.FAILED, [a.outcome for a in job.history]
        assert time.monotonic() < deadline, f"still {job.state.value} after 60 s"
        await asyncio.sleep(0.1)
        await rival.upkeep.recover()
    stop.set()
    await running
    # Then the task completed once on its only attempt: the runner renewed the lease
    job = await afterward.get(task_id)
    assert job.attempts == 1
    assert [a.outcome for a in job.history] == ["succeeded"]
    assert apps.EVENTS == [("burned", "True")]


async def test_graceful_stop_hands_back_unfinished_tasks_without_spending_attempts(
    afterward: Afterward,
) -> None:
    # Given a runner with a 0.2 s grace period running a 0.05 s task and a 30 s task
    runner = other_runner(afterward, grace_period=0.2)
    quick = await afterward.enqueue(apps.sleeps, 0.05)
    slow = await afterward.enqueue(apps.sleeps, 30.0)
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    while (await afterward.get(slow)).state is not JobState.RUNNING:
        await asyncio.sleep(0.01)
    # When it is told to stop
    stop.set()
    await asyncio.wait_for(running, 5)
    # Then the quick task finished, and the slow one is queued again, attempt not spent
    assert (await afterward.get(quick)).state is JobState.SUCCEEDED
    handed_back = await afterward.get(slow)
    assert handed_back.state is JobState.QUEUED
    assert handed_back.max_attempts == 3 + 1
    assert [a.outcome for a in handed_back.history] == ["released"]


# -- taking tasks ahead of their turn (`afterward.worker.slots`) -------------------------

CONCURRENCY = 2
BOUND = 30.0
"""A generous bound for "soon": only a hang fails, never a slow machine."""


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + BOUND
    while not await check():
        assert time.monotonic() < deadline, f"not {what} after {BOUND} s"
        await asyncio.sleep(0.01)


async def _running(afterward: Afterward) -> int:
    return (await afterward.store.counts()).get(("default", JobState.RUNNING), 0)


async def _ahead_taken(afterward: Afterward) -> bool:
    return await _running(afterward) == 2 * CONCURRENCY


async def _all_succeeded(afterward: Afterward, ids: list[str]) -> bool:
    return all(await _states(afterward, ids, JobState.SUCCEEDED))


async def _states(afterward: Afterward, ids: list[str], state: JobState) -> list[bool]:
    return [(await afterward.get(i)).state is state for i in ids]


async def _after(afterward: Afterward, warm_up_seconds: float) -> list[str]:
    """Give a running loop four tasks taking `warm_up_seconds`, then six that wait at the
    gate (two start, in the two slots); return the gated tasks' ids once both started."""
    apps.EVENTS.clear()
    apps.GATE["open"] = asyncio.Event()
    warm_up = [await afterward.enqueue(apps.sleeps, warm_up_seconds) for _ in range(4)]
    await _until(lambda: _all_succeeded(afterward, warm_up), "warmed up")
    gated = [await afterward.enqueue(apps.waits_at_gate, str(n)) for n in range(6)]

    async def both_started() -> bool:
        return len(apps.EVENTS) == CONCURRENCY

    await _until(both_started, "started in both slots")
    return gated


@pytest.fixture
def patience(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Set how long tasks taken ahead wait for a slot before they are handed back."""
    return lambda seconds: monkeypatch.setattr(slots, "PATIENCE", seconds)


async def test_while_tasks_run_short_one_concurrency_more_is_taken_ahead(
    afterward: Afterward, patience: Callable[[float], None]
) -> None:
    # Given a worker loop that ran short tasks, whose tasks taken ahead may wait 30 s
    patience(BOUND)
    runner = other_runner(afterward, concurrency=CONCURRENCY)
    stop = asyncio.Event()
    loop = asyncio.create_task(runner.run(stop))
    gated = await _after(afterward, 0.0)
    # When both slots are held by tasks at the gate
    # Then two more are taken (leased, running in the store) but not started
    await _until(lambda: _ahead_taken(afterward), "taken ahead")
    await asyncio.sleep(0.2)
    assert await _running(afterward) == 2 * CONCURRENCY
    assert len(apps.EVENTS) == CONCURRENCY
    # And once the gate opens, every task runs, never more than two at once
    apps.GATE["open"].set()
    await _until(lambda: _all_succeeded(afterward, gated), "all run")
    assert sorted(key for _, key in apps.EVENTS) == [str(n) for n in range(6)]
    stop.set()
    await asyncio.wait_for(loop, BOUND)


async def test_tasks_taken_ahead_that_find_no_slot_in_time_are_handed_back(
    afterward: Afterward, patience: Callable[[float], None]
) -> None:
    # Given a loop that ran short tasks, and took two ahead behind two at the gate
    patience(0.5)
    runner = other_runner(afterward, concurrency=CONCURRENCY)
    stop = asyncio.Event()
    loop = asyncio.create_task(runner.run(stop))
    gated = await _after(afterward, 0.0)
    await _until(lambda: _ahead_taken(afterward), "taken ahead")
    ahead = await _taken_ahead(afterward, gated)

    # When no slot frees within the patience
    # Then the two are handed back unstarted, without spending an attempt, for another
    # worker to start; and no task more is taken ahead while the running ones hold on
    async def handed_back() -> bool:
        return all(await _states(afterward, ahead, JobState.QUEUED))

    await _until(handed_back, "handed back")
    await asyncio.sleep(0.3)
    assert await _running(afterward) == CONCURRENCY
    for job_id in ahead:
        job = await afterward.get(job_id)
        assert (job.max_attempts, [a.outcome for a in job.history]) == (4, ["released"])
    assert len(apps.EVENTS) == CONCURRENCY
    apps.GATE["open"].set()
    await _until(lambda: _all_succeeded(afterward, gated), "all run")
    stop.set()
    await asyncio.wait_for(loop, BOUND)


async def test_while_tasks_run_long_nothing_is_taken_ahead(afterward: Afterward) -> None:
    # Given a worker loop whose tasks took longer than "short"
    runner = other_runner(afterward, concurrency=CONCURRENCY)
    stop = asyncio.Event()
    loop = asyncio.create_task(runner.run(stop))
    gated = await _after(afterward, 4 * SHORT)
    # When both slots are held by tasks at the gate
    await asyncio.sleep(0.3)
    # Then no other task is taken: another worker may start them
    assert await _running(afterward) == CONCURRENCY
    apps.GATE["open"].set()
    await _until(lambda: _all_succeeded(afterward, gated), "all run")
    stop.set()
    await asyncio.wait_for(loop, BOUND)


async def test_a_stopping_loop_hands_back_the_tasks_taken_ahead_at_once(
    afterward: Afterward, patience: Callable[[float], None]
) -> None:
    # Given a loop with two tasks at the gate and two taken ahead, and a 1 s grace period
    patience(BOUND)
    runner = other_runner(afterward, grace_period=1.0, concurrency=CONCURRENCY)
    stop = asyncio.Event()
    loop = asyncio.create_task(runner.run(stop))
    gated = await _after(afterward, 0.0)
    await _until(lambda: _ahead_taken(afterward), "taken ahead")
    ahead = await _taken_ahead(afterward, gated)
    # When it is told to stop
    stop.set()

    # Then the tasks taken ahead are queued again at once, within the grace period,
    # without spending an attempt, and were never started
    async def handed_back() -> bool:
        return all(await _states(afterward, ahead, JobState.QUEUED))

    await _until(handed_back, "handed back")
    assert not loop.done()  # still within the grace period of the two at the gate
    for job_id in ahead:
        job = await afterward.get(job_id)
        assert (job.max_attempts, [a.outcome for a in job.history]) == (4, ["released"])
    assert len(apps.EVENTS) == CONCURRENCY
    await asyncio.wait_for(loop, BOUND)


async def _taken_ahead(afterward: Afterward, gated: list[str]) -> list[str]:
    """The gated tasks running in the store (leased) that have not started."""
    started = {key for _, key in apps.EVENTS}
    running = await _states(afterward, gated, JobState.RUNNING)
    ahead = [i for n, i in enumerate(gated) if running[n] and str(n) not in started]
    assert len(ahead) == CONCURRENCY
    return ahead


# -- suspects: tasks whose last attempt was lost with its worker (`worker.loop`) ---------


async def test_suspects_run_one_at_a_time_and_stay_suspects_when_handed_back(
    afterward: Afterward,
) -> None:
    # Given three tasks at the gate whose attempt was lost with a worker that died
    apps.EVENTS.clear()
    apps.GATE["open"] = asyncio.Event()
    ids = [await afterward.enqueue(apps.waits_at_gate, str(n)) for n in range(3)]
    store, now = afterward.store, time.time()
    assert len(await store.acquire("dead-worker", now=now, lease=600, limit=3)) == 3
    assert await store.recover(now=now, dead_workers=["dead-worker"]) == 3
    # When a loop with three free slots runs, looking again every 0.05 s
    runner = other_runner(afterward, concurrency=3, poll_interval=0.05)
    stop = asyncio.Event()
    loop = asyncio.create_task(runner.run(stop))

    # Then it starts one and hands the other two back, again and again: a hand-back
    # leaves a suspect one, so they never run beside the first
    async def handed_back_twice() -> bool:
        others = [await afterward.get(i) for i in ids if i not in _started(ids)]
        return len(others) == 2 and all(
            [a.outcome for a in j.history].count(Outcome.RELEASED) >= 2 for j in others
        )

    await _until(handed_back_twice, "handed back twice")
    assert len(apps.EVENTS) == 1
    for job_id in ids:
        assert (await afterward.get(job_id)).last_outcome is Outcome.LOST
    # And once the first is done, the others run, all to success
    apps.GATE["open"].set()
    await _until(lambda: _all_succeeded(afterward, ids), "all run")
    assert sorted(key for _, key in apps.EVENTS) == ["0", "1", "2"]
    stop.set()
    await asyncio.wait_for(loop, BOUND)


def _started(ids: list[str]) -> set[str]:
    """The ids among `ids` (gated tasks keyed by position) that have started."""
    return {ids[int(key)] for _, key in apps.EVENTS}
