"""A runner's outcomes and chain steps, written in batches (`Coalescer`): what its tasks
report while the previous write is in flight goes to the store in one write."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..jobs import Job
from ..stores.base import Store
from .coalesce import Coalescer

__all__ = ["Batches", "Step"]

Step = tuple[tuple[str, int] | None, str | None]
"""A chain's step: the (task id, attempt) that succeeded, and the id of the task to take."""


class Batches:
    """The batched writes of one worker identity: successes, and the steps of chains."""

    def __init__(
        self, store: Store, worker_id: str, clock: Callable[[], float], lease: float
    ) -> None:
        self._store = store
        self._worker_id = worker_id
        self._clock = clock
        self._lease = lease
        self.completions: Coalescer[tuple[str, int], bool] = Coalescer(self._complete)
        """A success: (task id, attempt) → whether its fence let it through."""
        self.chain_steps: Coalescer[Step, tuple[bool, Job | None]] = Coalescer(self._step)
        """A chain's step → whether the success was recorded, and the next task taken."""

    async def _complete(self, attempts: Sequence[tuple[str, int]]) -> list[bool]:
        done, _ = await self._store.complete_and_acquire(
            self._worker_id, attempts, now=self._clock(), lease=self._lease, limit=0
        )
        return [job_id in done for job_id, _ in attempts]

    async def _step(self, steps: Sequence[Step]) -> list[tuple[bool, Job | None]]:
        """Steps of several chains in one write: each completes the task that ran (if
        any) and takes the next one named (if any), which that completion released."""
        attempts = [done for done, _ in steps if done is not None]
        wanted = [next_id for _, next_id in steps if next_id is not None]
        completed, jobs = await self._store.complete_and_acquire(
            self._worker_id,
            attempts,
            now=self._clock(),
            lease=self._lease,
            limit=len(wanted),
            ids=wanted,
        )
        taken = {job.id: job for job in jobs}
        return [
            (done is not None and done[0] in completed, taken.get(next_id or ""))
            for done, next_id in steps
        ]
