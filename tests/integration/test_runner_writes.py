"""The runner's writes: a web process's chain takes one write per step (a real SQLite
store, its calls counted on the way through)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from afterward import Afterward, JobState
from afterward.stores import store_from_url

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
    afterward = Afterward(store=store, execution="in_app")
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
