"""The worker loop: take due tasks as slots free, start them, hand back what cannot run.

`WorkerLoop` is one run of `Runner.run`, from its first acquire to its wind-down. It
keeps the slots (`Slots`: tasks running, tasks taken ahead of their turn while tasks run
short) and the suspects: tasks whose last attempt was lost with its worker, which may be
what killed it. At most one suspect runs in a process at a time; the others are handed
back at once, so that the tasks that died next to a poison task are not taken down with
it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from ..jobs import Job, Outcome
from .slots import Slots

if TYPE_CHECKING:
    from .runner import Runner

__all__ = ["WorkerLoop", "first"]

log = logging.getLogger("afterward.worker")

_SAFETY_POLL = 4.0
"""Seconds an idle worker waits for the store's signal of new work before it looks anyway:
a retry or a scheduled task coming due sends no signal, so an idle worker starts it up to
this late. Each look is a store call (the idle cost: `bench.idle`)."""


class WorkerLoop:
    """One run of a runner's worker loop: its slots and its suspects."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._store = runner.store
        self._settings = runner.settings
        self._clock = runner.clock
        self._health = runner.health
        self._leases = runner.leases
        self._retiring = runner.retiring
        self._suspects: set[asyncio.Task[bool]] = set()
        """Running tasks whose previous attempt was lost with its worker (see `_take`)."""

    async def run(self, stop: asyncio.Event) -> None:
        """Run due tasks until `stop` is set, then wind down gracefully.

        On stop: no new task is acquired; tasks taken ahead are handed back at once;
        running tasks get the grace period to finish; the rest are cancelled and handed
        back without spending an attempt. A runner made with ``retire_when_stuck`` winds
        down the same way on its own, with `retired` set, when a plain function's thread
        is stuck past its time limit.
        """
        maintain_stop = asyncio.Event()
        maintainer = asyncio.create_task(self._runner.upkeep.maintain(maintain_stop))
        slots = Slots(self._settings.concurrency)
        try:
            while not (stop.is_set() or self._retiring.is_set()):
                if self._start_ready(slots):
                    await asyncio.sleep(0)  # they begin before the next store call's work
                if stalled := slots.stalled():
                    held = [job.id for job in stalled if self._leases.holds(job.id)]
                    await self._hand_back(
                        held, "taken ahead (the running ones are long)", level=logging.INFO
                    )
                wanted = slots.wanted()
                if wanted <= 0:
                    slots.freed.clear()
                    turn = [stop.wait(), self._retiring.wait(), slots.freed.wait()]
                    await first(*turn, timeout=slots.patience_left())
                    continue
                jobs, handed_back = await self._take(wanted, slots.ready)
                for job in jobs:
                    self._leases.hold(job.id, job.attempts)  # renewed while it waits its turn
                slots.queue(jobs)
                if (jobs and not handed_back) or slots.startable():
                    continue
                wake = (  # handed back: try again when our suspect is done
                    [
                        asyncio.wait(
                            set(self._suspects), timeout=self._poll, return_when="FIRST_COMPLETED"
                        )
                    ]
                    if handed_back and self._suspects
                    else self._work_signals()
                )
                slots.freed.clear()
                waits: list[Awaitable[Any]] = [stop.wait(), self._retiring.wait(), *wake]
                if slots.ready:  # a turn for those
                    waits.append(slots.freed.wait())
                await first(*waits, timeout=slots.patience_left())
        finally:
            await self._wind_down(slots)
            maintain_stop.set()
            await maintainer

    def _start_ready(self, slots: Slots) -> int:
        """Start the tasks taken ahead, as far as there are free slots; return how many."""
        started = 0
        while slots.startable():
            job = slots.ready.popleft()
            if not self._leases.holds(job.id):  # its lease was lost while it waited
                continue
            task = slots.start(job, self._runner.run_job)
            started += 1
            if _suspect(job):
                self._suspects.add(task)
                task.add_done_callback(self._suspects.discard)
        return started

    def _work_signals(self) -> list[Awaitable[Any]]:
        """What says new work may be due: this process's `nudge`, or the store's signal (at
        most `_SAFETY_POLL`; without `Runner.watch`, the poll interval at most). The caller
        waits for them beside its own events, in one `first`: each level of nesting would
        cost the wake-up a few more turns of the event loop."""
        if self._runner.watch:
            return [self._store.wait_for_work(_SAFETY_POLL), self._runner.nudged.wait()]
        return [self._runner.nudged.wait(), asyncio.sleep(self._poll)]

    @property
    def _poll(self) -> float:
        return self._settings.poll_interval

    async def _take(self, limit: int, ahead: Sequence[Job] = ()) -> tuple[list[Job], bool]:
        """Acquire up to `limit` tasks to run, keeping at most one suspect (a task whose
        last attempt was lost with its worker) running or taken `ahead` in this process
        at a time; hand the other suspects back at once, without spending an attempt.
        Return the tasks to run, and whether any were handed back.

        A task that crashes its process is taken back together with the tasks that died
        with it, and they would be acquired together again, and die together again, until
        the innocent ones too had used up their attempts. One at a time, a poison task
        takes no other suspect down with it.
        """
        keep: list[Job] = []
        extra: list[str] = []
        suspected = bool(self._suspects) or any(map(_suspect, ahead))
        self._runner.nudged.clear()  # what is nudged from now on, the next take sees
        for job in await self._runner.acquire(limit):
            if _suspect(job) and (suspected or any(map(_suspect, keep))):
                extra.append(job.id)
            else:
                keep.append(job)
        if extra:
            try:
                await self._release(extra)
            except Exception as exc:  # they come back when their lease expires
                self._health.failed("handing back suspect tasks", exc)
        return keep, bool(extra)

    async def _wind_down(self, slots: Slots) -> None:
        """Hand back the tasks taken ahead at once; give the running ones the grace
        period, then cancel and hand back the rest."""
        waiting = [job.id for job in slots.ready if self._leases.holds(job.id)]
        slots.ready.clear()
        await self._hand_back(waiting, "taken ahead and not started")
        active = slots.active
        if not active:
            return
        log.info(
            "stopping: %d task(s) running, %.0f s grace",
            len(active),
            self._settings.grace_period,
        )
        _, pending = await asyncio.wait(set(active), timeout=self._settings.grace_period)
        # Cancelled ones too: a loop shutting down cancels every task on it at once.
        unfinished = [job_id for t, job_id in active.items() if t in pending or t.cancelled()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if unfinished:
            await self._hand_back(unfinished, "unfinished")

    async def _release(self, ids: list[str]) -> int:
        """Release `ids` in the store, without spending an attempt; return how many."""
        return await self._store.release(self._runner.worker_id, ids, now=self._clock())

    async def _hand_back(self, ids: list[str], which: str, *, level: int = logging.WARNING) -> None:
        """Hand `ids` back without spending an attempt, and stop renewing them."""
        if not ids:
            return
        try:
            handed = await self._release(ids)
        except Exception as exc:  # the store, or a transient lack of memory or threads
            log.error("could not hand back %s (%s): they return when their lease expires", ids, exc)
        else:
            log.log(level, "handed back %d %s task(s) without spending an attempt", handed, which)
        finally:
            self._leases.drop(ids)


def _suspect(job: Job) -> bool:
    """Whether `job`'s last attempt that counted was lost with its worker (it may have
    killed it). Handing a suspect back leaves it one (see `Job.last_outcome`)."""
    return job.last_outcome is Outcome.LOST


async def first(*waits: Awaitable[Any], timeout: float | None = None) -> None:
    """Wait until the first of `waits` finishes, or `timeout` seconds; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
