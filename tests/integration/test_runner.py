"""The runner against a real SQLite store: retries, time limits, leases, refusals, and
taking tasks ahead while tasks run short."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from afterward import Afterward, JobState, Outcome, RetryPolicy, TaskFailed
from afterward.calls.preparer import new_task_id
from afterward.jobs import NewJob
from afterward.testing import drain
from afterward.worker import slots
from afterward.worker.executor import Executor
from afterward.worker.runner import Runner
from afterward.worker.slots import SHORT

from . import apps

IMPORTS: list[str] = []
_AUDITING = {"on": False}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _AUDITING["on"] and event == "import":
        IMPORTS.append(str(args[0]))


sys.addaudithook(_audit)


@pytest.fixture
async def afterward(tmp_path: Path) -> AsyncIterator[Afterward]:
    instance = Afterward(
        url=f"sqlite:///{tmp_path / 'tasks.db'}",
        execution="workers",
        retry=RetryPolicy(max_attempts=3, backoff_base=0.0, backoff_max=0.0),
    )
    await instance.open()
    apps.FLAKY_CALLS.clear()
    yield instance
    await instance.aclose()


def other_runner(afterward: Afterward, **settings: Any) -> Runner:
    from afterward.worker.identity import new_worker_id

    return Runner(
        store=afterward.store,
        registry=afterward.registry,
        settings=replace(afterward.settings, **settings),
        worker_id=new_worker_id(),
        executor=Executor(4),
    )


@pytest.mark.parametrize(
    "function", ["os:system", "builtins:eval", "subprocess:Popen", "evil_module:run", "json:loads"]
)
async def test_row_naming_a_foreign_function_fails_without_importing(
    afterward: Afterward, function: str
) -> None:
    # Given a row written straight into the store naming a function the app never registered
    job = NewJob(
        id=new_task_id(),
        function=function,
        payload='{"args": ["touch /tmp/pwned"]}',
        max_attempts=5,
    )
    await afterward.store.enqueue([job], now=time.time())
    # When a worker runs due tasks, watched by an audit hook
    IMPORTS.clear()
    _AUDITING["on"] = True
    try:
        unsuccessful = await drain(afterward, raise_on_failure=False)
    finally:
        _AUDITING["on"] = False
    # Then the task failed for good at once, with a reason, and nothing was imported
    stored = await afterward.get(job.id)
    assert unsuccessful == [job.id]
    assert stored.state is JobState.FAILED
    assert stored.attempts == 1
    assert stored.last_error is not None and "UnknownFunction" in stored.last_error
    assert function.split(":")[0] in stored.last_error
    assert [m for m in IMPORTS if m.split(".")[0] in {"os", "subprocess", "evil_module"}] == []


async def test_malformed_payload_fails_with_a_reason(afterward: Afterward) -> None:
    # Given a registered function but a payload that is not valid JSON for it
    name = afterward.registry.name_of(apps.record)
    job = NewJob(id=new_task_id(), function=name, payload="{not json", max_attempts=5)
    await afterward.store.enqueue([job], now=time.time())
    # When it is drained, Then it fails for good with a readable reason and drain re-raises
    with pytest.raises(TaskFailed, match=r"JSONDecodeError|Expecting"):
        await drain(afterward)
    assert (await afterward.get(job.id)).state is JobState.FAILED


async def test_failed_attempts_retry_then_succeed_keeping_every_error(
    afterward: Afterward,
) -> None:
    # Given a task that fails twice before it succeeds (3 attempts allowed, no backoff)
    task_id = await afterward.enqueue(apps.flaky, "welcome-email", 2)
    # When due tasks are drained until nothing is due
    while await drain(afterward, raise_on_failure=False):
        pass
    # Then it succeeded on attempt 3 and both errors are kept with their tracebacks
    job = await afterward.get(task_id)
    assert job.state is JobState.SUCCEEDED
    assert [a.outcome for a in job.history] == ["failed", "failed", "succeeded"]
    assert all("ConnectionError: smtp down" in (a.error or "") for a in job.history[:2])
    assert all("Traceback" in (a.traceback or "") for a in job.history[:2])


async def test_exhausted_task_fails_and_blocks_its_chain_until_retried(
    afterward: Afterward,
) -> None:
    # Given a chain: a task that always fails, then one that records
    chain = [
        afterward.prepare(apps.always_fails, ("no smtp",), {}),
        afterward.prepare(apps.record, ("after",), {}),
    ]
    first, second = await afterward.enqueue_chain(chain, reserve=False)
    apps.EVENTS.clear()
    # When drained until nothing is due
    while await drain(afterward, raise_on_failure=False):
        pass
    # Then the first failed after 3 attempts and the second is still waiting
    failed = await afterward.get(first)
    assert failed.state is JobState.FAILED
    assert failed.attempts == 3
    assert (await afterward.get(second)).state is JobState.WAITING
    assert apps.EVENTS == []
    # When the failed task is retried
    await afterward.store.retry(first, now=time.time())
    # Then it is queued with a fresh budget
    again = await afterward.get(first)
    assert again.state is JobState.QUEUED
    assert again.max_attempts == again.attempts + 3


async def test_attempt_past_its_time_limit_fails_with_time_limit_exceeded(
    afterward: Afterward,
) -> None:
    # Given a task whose attempt must end within 0.1 s but sleeps for 5 s
    fast = Afterward(
        url=afterward.store.url,
        execution="workers",
        retry=RetryPolicy(max_attempts=1, time_limit=0.1),
    )
    task_id = await fast.enqueue(apps.sleeps, 5.0)
    # When it is drained
    started = time.monotonic()
    with pytest.raises(TaskFailed, match="TimeLimitExceeded"):
        await drain(fast)
    # Then it was stopped near the limit, not after the full sleep
    assert time.monotonic() - started < 4.0
    assert (await fast.get(task_id)).state is JobState.FAILED
    await fast.aclose()


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
