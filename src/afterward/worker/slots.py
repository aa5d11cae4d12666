"""The worker loop's slots: the tasks running, those writing their outcome, and those
taken ahead of their turn.

A slot frees when a task's function returns, so the next task starts while the outcome
is written (outcomes share writes, see `coalesce`); tasks still writing are capped (see
`_WRITING`).

While the tasks run short (`SHORT`, on average), the loop also takes up to one more
`concurrency` of tasks ahead: the next ones then start the moment a slot frees, instead of
after a round trip to the store (the next acquire is under way while tasks run). A task
taken ahead is leased like a running one (renewed, visible, fenced), waits at most
behind short tasks, and is handed back at once if the worker stops, or if no slot frees
within `PATIENCE` (the running tasks turned out long). While tasks run long, nothing is
taken ahead: a task is not held back behind a long one while another worker could start
it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from ..jobs import Job

__all__ = ["PATIENCE", "SHORT", "Slots"]

SHORT = 0.005
"""Seconds: tasks whose functions return this fast, on average, are short."""
PATIENCE = 4 * SHORT
"""Seconds tasks taken ahead wait for a slot: when none frees for this long, the running
tasks are not short, and those waiting are handed back for another worker to start."""
_WRITING = 4
"""Tasks running or writing their outcome are capped at this many `concurrency`. An
outcome's write takes a commit's time (an fsync, about a millisecond), and short tasks
keep returning meanwhile: with a cap of 2, no-op tasks ran at 4,200-4,300 a second on
PostgreSQL against 6,400-6,500 with 4."""
_WEIGHT = 0.2
"""The weight of the latest task in the running average of how long tasks take."""

_Run = Callable[[Job, Callable[[], None]], Coroutine[Any, Any, bool]]
"""Runs one task; calls its second argument once the task's function has returned."""


class Slots:
    """The bookkeeping of one worker loop (one event loop, no locking)."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.executing: dict[str, float] = {}
        """Task id → when its function started (monotonic), until it returns."""
        self.active: dict[asyncio.Task[bool], str] = {}
        """Tasks running or writing their outcome → their ids."""
        self.ready: deque[Job] = deque()
        """Tasks taken ahead, in the order they are to start."""
        self.freed = asyncio.Event()
        """Set when a slot frees."""
        self.typical: float | None = None
        """The running average of how long tasks' functions took (None: none ran yet)."""
        self.progress = time.monotonic()
        """When a slot last freed, or tasks were taken ahead with none waiting (monotonic)."""

    def free(self) -> int:
        """How many tasks may start now."""
        return min(
            self.concurrency - len(self.executing), _WRITING * self.concurrency - len(self.active)
        )

    def startable(self) -> bool:
        """Whether a task taken ahead can start now."""
        return bool(self.ready) and self.free() > 0

    def wanted(self) -> int:
        """How many tasks to ask the store for: the free slots, and while tasks run
        short, enough to fill one `concurrency` ahead."""
        short = self.typical is not None and self.typical < SHORT
        ahead = self.concurrency if short else 0
        return max(self.free(), 0) + ahead - len(self.ready)

    def queue(self, jobs: list[Job]) -> None:
        """Queue acquired `jobs` to start as slots free (at once, for as many as are free)."""
        if not self.ready:
            self.progress = time.monotonic()
        self.ready.extend(jobs)

    def patience_left(self) -> float | None:
        """Seconds until the tasks taken ahead have waited `PATIENCE` for a slot to free
        (None: none waits)."""
        if not self.ready:
            return None
        return max(0.0, self.progress + PATIENCE - time.monotonic())

    def stalled(self) -> list[Job]:
        """Take out the tasks taken ahead if they have waited `PATIENCE` for a slot (and
        count the running tasks as long, so that nothing more is taken ahead for now)."""
        if self.startable() or self.patience_left() != 0.0:
            return []
        self.typical = max(self.typical or 0.0, PATIENCE)
        stalled = list(self.ready)
        self.ready.clear()
        return stalled

    def start(self, job: Job, run: _Run) -> asyncio.Task[bool]:
        """Start `run(job, ran)` as a task in a slot; `ran` frees the slot."""
        self.executing[job.id] = time.monotonic()
        task = asyncio.create_task(run(job, functools.partial(self._ran, job.id)))
        self.active[task] = job.id
        task.add_done_callback(self._finished)
        return task

    def _ran(self, job_id: str) -> None:
        started = self.executing.pop(job_id, None)
        if started is not None:
            took = time.monotonic() - started
            typical = self.typical
            self.typical = took if typical is None else typical + _WEIGHT * (took - typical)
        self.progress = time.monotonic()
        self.freed.set()

    def _finished(self, task: asyncio.Task[bool]) -> None:
        self._ran(self.active.pop(task, ""))
