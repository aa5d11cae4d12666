"""The runner's writes: outcomes travel with the next acquire, a chain's steps are one
write each (a real SQLite store, its calls counted on the way through)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from afterward import Afterward, JobState
from afterward.stores import store_from_url
from afterward.worker.executor import Executor
from afterward.worker.identity import new_worker_id
from afterward.worker.runner import Runner

from . import apps

WRITES = {"acquire", "complete", "complete_many", "complete_and_acquire", "fail", "release"}


class CountedStore:
    """A real store whose task-operation calls are noted, with their arguments."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if name not in WRITES:
            return found

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            return await found(*args, **kwargs)

        return counted


async def test_a_reserved_chain_runs_with_one_write_per_step(tmp_path: Path) -> None:
    # Given an app running its tasks in-process, on a store whose writes are counted
    store = CountedStore(store_from_url(f"sqlite:///{tmp_path / 'tasks.db'}"))
    afterward = Afterward(store=store, execution="in_app")  # type: ignore[arg-type]
    await afterward.open()
    try:
        tasks = [afterward.prepare(apps.record, (f"step {n}",), {}) for n in range(3)]
        ids = await afterward.enqueue_chain(tasks, reserve=True)
        apps.EVENTS.clear()
        # When the request's chain of three runs after the response
        await afterward.run_chain(ids)
        # Then all three ran in order and succeeded
        assert apps.EVENTS == [("step 0",), ("step 1",), ("step 2",)]
        for task_id in ids:
            assert (await afterward.get(task_id)).state is JobState.SUCCEEDED
        # And each step was one write: take the first; complete one and take the next,
        # twice; complete the last
        # (the embedded worker's own looks for due work, on its own loop, left out)
        mine = [c for c in store.calls if c[0] != "acquire" or c[2].get("ids") is not None]
        assert [name for name, _, _ in mine] == ["complete_and_acquire"] * 4
        reported = [len(args[1]) for _, args, _ in mine]
        taken = [len(kwargs["ids"]) for _, _, kwargs in mine]
        assert (reported, taken) == ([0, 1, 1, 1], [1, 1, 1, 0])
    finally:
        await afterward.aclose()


async def test_the_worker_writes_outcomes_with_its_next_acquire(tmp_path: Path) -> None:
    # Given 40 due no-op tasks and a worker of concurrency 8, its store's writes counted
    store = CountedStore(store_from_url(f"sqlite:///{tmp_path / 'tasks.db'}"))
    afterward = Afterward(store=store, execution="workers")  # type: ignore[arg-type]
    await afterward.open()
    runner = Runner(
        store=store,  # type: ignore[arg-type]
        registry=afterward.registry,
        settings=afterward.settings,
        worker_id=new_worker_id(),
        executor=Executor(8),
    )
    stop = asyncio.Event()
    try:
        ids = await afterward.enqueue_many(apps.record_later, [(f"t{n}",) for n in range(40)])
        apps.EVENTS.clear()
        # When the worker runs until they are all done
        running = asyncio.create_task(runner.run(stop))

        async def succeeded() -> int:
            counts = await afterward.store.counts()
            return sum(n for (_, state), n in counts.items() if state is JobState.SUCCEEDED)

        done = 0
        deadline = time.monotonic() + 30
        while done < len(ids) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            done = await succeeded()
        stop.set()
        await running
        # Then every task succeeded, once
        assert done == len(ids) and len(apps.EVENTS) == 40
        # And some successes were written by the acquire that took the next tasks, not by
        # writes of their own
        carried = sum(
            len(args[1]) for name, args, _ in store.calls if name == "complete_and_acquire"
        )
        assert carried > 0, [name for name, _, _ in store.calls]
    finally:
        await afterward.aclose()
