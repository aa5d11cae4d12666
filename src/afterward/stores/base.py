"""The `Store` protocol: every task operation a store must provide, and its contract.

Times are seconds since the epoch, passed in as `now` by the caller, so that one clock
(possibly a fake one in tests) rules every decision. Every method that changes a running
task is *fenced*: it takes effect only if `worker` still holds the task's current lease
(same owner, same attempt number, lease not expired) and returns False otherwise.
State decisions (retry or fail, when) are made by `afterward.jobs`; stores persist them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..jobs import Failure, Job, JobState, NewJob

__all__ = ["Counts", "JobFilter", "Store", "TransactionalStore"]

Counts = Mapping[tuple[str, JobState], int]
"""Number of tasks by (queue, state); absent keys are zero."""


@dataclass(frozen=True, kw_only=True)
class JobFilter:
    """Which tasks `Store.list` returns. Every field left None matches everything."""

    states: Sequence[JobState] | None = None
    queue: str | None = None
    function: str | None = None
    """A case-sensitive substring of the stored function name."""
    chain_id: str | None = None
    id_prefix: str | None = None
    """The start of the id (case-sensitive, taken literally: ``%`` and ``_`` are not
    wildcards); a unique prefix selects one task, as in git."""


class Store(Protocol):
    """Where tasks live. One instance is shared by every coroutine of a process."""

    url: str
    """The store's URL with any password removed, for messages."""

    async def open(self, *, create: bool = True) -> None:
        """Connect, and create or upgrade the schema (safe when many processes race).

        With ``create=False`` a store that does not exist yet is not created (no SQLite
        file or folder, no PostgreSQL schema, no Redis key): `StoreError` says so
        instead. One that exists is still upgraded to this code's schema.

        :raises SchemaTooNew: the schema is newer than this code.
        :raises StoreError: the store cannot be reached, or does not exist and `create`
            is False (the message starts with ``no afterward store at``).
        """

    async def close(self) -> None:
        """Release connections. Only what the store opened itself is closed."""

    async def now(self) -> float:
        """The store's own clock (seconds since the epoch).

        Workers on many machines agree on time by offsetting their clocks to this one
        (`afterward.worker.clock.StoreClock`), so leases never depend on a worker's clock.
        """
        ...

    async def enqueue(
        self,
        jobs: Sequence[NewJob],
        *,
        now: float,
        reserve_for: str | None = None,
        lease: float = 0.0,
    ) -> list[str]:
        """Store `jobs` in one transaction and return their ids, in order.

        A job whose `prev_id` is None starts `queued` (or `scheduled` if `run_at` is in
        the future); one with a `prev_id` starts `waiting`, and its predecessor's `next_id`
        points at it. With `reserve_for`, the jobs are held for that worker until
        ``now + lease``: no one else acquires them before then (the web process uses this
        to run a request's tasks itself right after the response). A job whose
        `unique_key` is already taken by an unfinished task is not stored: the existing
        task's id is returned in its place. A `unique_key` may only be set on a job that is
        not part of a chain; `options["max_attempts"]` is the budget a later `retry`
        restores. One call may hold many unrelated jobs and chains (group commit).

        :raises ValueError: a `unique_key` on a job of a chain.
        """
        ...

    async def acquire(
        self,
        worker: str,
        *,
        now: float,
        lease: float,
        limit: int,
        queues: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[Job]:
        """Atomically take up to `limit` due tasks for `worker` and return them `running`.

        Due means `queued`, or `scheduled` with ``run_at <= now``, and not under an
        unexpired reservation. Highest priority first, then oldest `run_at`. Each acquired
        task's `attempts` goes up by one and a new attempt record is opened. With `ids`,
        only those tasks are considered, and `worker`'s own reservations among them may be
        taken: a reserved task is only ever acquired by its owner, through `ids`.
        """
        ...

    async def extend_leases(
        self, worker: str, ids: Sequence[str], *, now: float, lease: float
    ) -> set[str]:
        """Push the lease of each task `worker` still holds (or has reserved) to now + lease.

        Returns the ids still held; an id missing from the answer was lost (fencing).
        """
        ...

    async def complete_and_acquire(
        self,
        worker: str,
        attempts: Sequence[tuple[str, int]],
        *,
        now: float,
        lease: float,
        limit: int,
        queues: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
    ) -> tuple[set[str], list[Job]]:
        """Complete `attempts` of `worker`, then `acquire`, in one write (and one round
        trip where the store allows): a worker reports what just ran and takes what runs
        next together; with ``limit=0`` it only reports.

        Completing marks each task (id, attempt number) `succeeded` and releases the next
        task of its chain. Each is fenced on its own: one whose lease was lost is left out
        of the ids returned, and neither stops the others nor the acquire. The acquire
        behaves exactly as `acquire` would after the completions: it sees the chain tasks
        they released (so `ids` can name the next task of a chain whose current task
        completes here). Returns the ids completed and the tasks acquired.
        """
        ...

    async def fail(
        self, job_id: str, worker: str, attempt: int, failure: Failure, *, now: float
    ) -> bool:
        """Record the attempt's error; `scheduled` at `failure.retry_at`, else `failed` (fenced)."""
        ...

    async def release(self, worker: str, ids: Sequence[str], *, now: float) -> int:
        """Hand tasks back to the queue without counting their attempt (graceful stop).

        Fenced: only tasks `worker` still holds under an unexpired lease are handed back;
        their budget grows by one (`attempts` never goes down). Also drops `worker`'s
        reservations among `ids`. Returns how many running tasks were handed back.
        """
        ...

    async def lease_holders(self) -> list[str]:
        """The workers holding a lease on a running task or a reservation."""
        ...

    async def recover(self, *, now: float, dead_workers: Sequence[str] = ()) -> int:
        """Take back running tasks whose lease expired or whose holder is in `dead_workers`.

        The lost attempt counts: the task goes back to `queued`, or to `failed` when it
        has used all its attempts. Returns how many tasks were taken back.
        """
        ...

    async def cancel(self, job_id: str, *, now: float) -> list[str]:
        """Cancel a task that has not started, and the rest of its chain; return their ids.

        :raises TaskNotFound: no such task.
        :raises InvalidTransition: the task is running or finished.
        """
        ...

    async def retry(self, job_id: str, *, now: float) -> None:
        """Queue a failed or cancelled task again with a fresh budget of attempts.

        Tasks behind it in its chain that were cancelled go back to `waiting`.

        :raises TaskNotFound: no such task.
        :raises InvalidTransition: the task is not failed or cancelled.
        """
        ...

    async def get(self, job_id: str) -> Job:
        """The task with its attempt history.

        :raises TaskNotFound: no such task.
        """
        ...

    async def list(self, where: JobFilter, *, limit: int = 50, offset: int = 0) -> list[Job]:
        """Tasks matching `where`, newest first (without attempt history)."""
        ...

    async def counts(self) -> Counts:
        """How many tasks there are by queue and state."""
        ...

    async def purge(self, *, states: Sequence[JobState], finished_before: float) -> int:
        """Delete tasks in `states` (terminal ones) that finished strictly before
        `finished_before`, with their attempts; return how many tasks were deleted."""
        ...

    async def wait_for_work(self, timeout: float) -> None:
        """Return when new work may be due, or after `timeout` seconds at most."""
        ...


@runtime_checkable
class TransactionalStore(Protocol):
    """A store that can enqueue inside the caller's own database transaction (PostgreSQL)."""

    async def enqueue_in(
        self, transaction: Any, jobs: Sequence[NewJob], *, now: float
    ) -> list[str]:
        """Store `jobs` inside `transaction`, on the caller's connection; they become
        visible to workers only when it commits, and vanish if it rolls back.

        :raises ConfigurationError: `transaction` is not a supported connection or session.
        """
        ...

    def enqueue_in_sync(self, transaction: Any, jobs: Sequence[NewJob], *, now: float) -> list[str]:
        """`enqueue_in` for a synchronous connection or session."""
        ...
