"""The task model: states, records, and every state-transition decision.

Pure code, no I/O: the runner and the stores ask this module what happens next, and the
stores only persist the answer atomically. The life of a task::

    waiting ──(previous task of its chain succeeded)──▶ queued
    queued / scheduled ──(acquired by a worker; attempt += 1)──▶ running
    running ──(returned)──▶ succeeded            (releases the next task of the chain)
    running ──(raised, retryable, attempts left)──▶ scheduled (run_at = now + backoff)
    running ──(raised otherwise / attempts used up)──▶ failed
    running ──(lease expired or holder died; attempts left)──▶ queued
    running ──(lease expired or holder died; attempts used up)──▶ failed
    running ──(graceful shutdown hands it back; attempt not counted)──▶ queued
    queued / scheduled / waiting ──(cancel)──▶ cancelled (and the rest of its chain)
    failed / cancelled ──(retry)──▶ queued (a fresh budget of attempts)

A task behind a failed one stays `waiting`; retrying the failed task resumes the chain.
"""

from __future__ import annotations

import enum
import random
import traceback as traceback_module
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .errors import InvalidOption, InvalidTransition
from .options import (
    StoredOptions,
    check_attempts,
    check_priority,
    check_queue,
    check_stored_options,
    check_time,
)
from .retry import RetryPolicy

__all__ = [
    "MAX_ERROR_TEXT",
    "Attempt",
    "Failure",
    "Job",
    "JobState",
    "NewJob",
    "Outcome",
    "check_new_jobs",
    "check_transition",
    "check_unique_keys",
    "decide_failure",
    "decide_lost",
    "permanent_failure",
]


class JobState(enum.StrEnum):
    """Where a task is in its life."""

    WAITING = "waiting"
    """Behind an earlier task of its chain that has not succeeded yet."""
    QUEUED = "queued"
    """Ready to run as soon as a worker is free."""
    SCHEDULED = "scheduled"
    """Ready to run once its `run_at` time comes (a retry's backoff or a delay)."""
    RUNNING = "running"
    """Held by a worker under a lease."""
    SUCCEEDED = "succeeded"
    """Finished without error."""
    FAILED = "failed"
    """Failed for good; every attempt's error is kept. Can be retried."""
    CANCELLED = "cancelled"
    """Cancelled before it ran. Can be retried."""

    @property
    def is_terminal(self) -> bool:
        """Whether the task will not run again unless someone retries it."""
        return self in _TERMINAL


_TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})

_ALLOWED_FROM: dict[str, frozenset[JobState]] = {
    "cancel": frozenset({JobState.QUEUED, JobState.SCHEDULED, JobState.WAITING}),
    "retry": frozenset({JobState.FAILED, JobState.CANCELLED}),
}


_PAST = {"cancel": "cancelled", "retry": "retried"}


def check_transition(state: JobState, operation: str, task_id: str) -> None:
    """Raise `InvalidTransition` unless `operation` ("cancel", "retry") is allowed in `state`."""
    allowed = _ALLOWED_FROM[operation]
    if state not in allowed:
        names = ", ".join(sorted(s.value for s in allowed))
        raise InvalidTransition(
            f"cannot {operation} task {task_id}: it is {state.value}; "
            f"only a task that is {names} can be {_PAST[operation]}"
        )


class NewJob(NamedTuple):
    """A task to enqueue, as a value. `prev_id` links it behind the previous task of its
    chain; `options` are shared by the tasks of one function (read-only).

    A named tuple: immutable, and cheap to make once per task on the enqueue path. Build
    it with keywords (the order of its fields is not part of the API). Every store's
    enqueue checks its values (`check_new_jobs`), a NaN `run_at` among them."""

    id: str
    function: str
    payload: str
    max_attempts: int
    queue: str = "default"
    priority: int = 0
    run_at: float | None = None
    options: StoredOptions = StoredOptions()
    chain_id: str | None = None
    prev_id: str | None = None
    unique_key: str | None = None

    def linked(self, chain_id: str, prev_id: str | None) -> NewJob:
        """This task as a link of chain `chain_id`, behind `prev_id` (a new value)."""
        return NewJob(
            id=self.id,
            function=self.function,
            payload=self.payload,
            max_attempts=self.max_attempts,
            queue=self.queue,
            priority=self.priority,
            run_at=self.run_at,
            options=self.options,
            chain_id=chain_id,
            prev_id=prev_id,
            unique_key=self.unique_key,
        )

    def start(self, now: float) -> tuple[JobState, float]:
        """The state it is stored in and its due time: waiting behind its chain,
        scheduled for later, or queued (`enqueue.lua` applies the same rule on Redis)."""
        run_at = now if self.run_at is None else self.run_at
        if self.prev_id is not None:
            return JobState.WAITING, run_at
        return (JobState.SCHEDULED if run_at > now else JobState.QUEUED), run_at


class Outcome(enum.StrEnum):
    """How an attempt ended."""

    SUCCEEDED = "succeeded"
    """It returned."""
    FAILED = "failed"
    """It raised (or its row could not be read): retried or failed, as decided."""
    LOST = "lost"
    """Its worker died or stopped renewing its lease (`decide_lost`); it may be what
    killed the worker."""
    RELEASED = "released"
    """Handed back unrun or unfinished (a graceful stop; a suspect or a task taken ahead
    handed back), without spending an attempt."""


@dataclass(frozen=True, kw_only=True)
class Attempt:
    """One run of a task."""

    number: int
    worker: str
    started_at: float
    finished_at: float | None
    outcome: Outcome | None
    """None while running."""
    error: str | None = None
    traceback: str | None = None


@dataclass(frozen=True, kw_only=True)
class Job:
    """A task as stored."""

    id: str
    function: str
    payload: str
    queue: str
    state: JobState
    priority: int
    run_at: float
    attempts: int
    max_attempts: int
    options: dict[str, Any]
    chain_id: str | None
    prev_id: str | None
    next_id: str | None
    unique_key: str | None
    lease_owner: str | None
    lease_expires_at: float | None
    created_at: float
    finished_at: float | None
    last_error: str | None
    last_outcome: Outcome | None
    """How its last attempt that counted ended: succeeded, failed or lost; None before one
    did. An attempt handed back (`Outcome.RELEASED`) does not count and leaves it as it
    was: a task lost with its worker stays a suspect however often it is handed back
    (see `afterward.worker.loop`)."""
    history: tuple[Attempt, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Failure:
    """What a failed attempt leads to: a retry at `retry_at`, or `failed` when it is None."""

    error: str
    traceback: str
    retry_at: float | None


def describe(error: BaseException) -> str:
    """One line naming the exception, as shown in lists."""
    text = str(error)
    name = type(error).__qualname__
    return f"{name}: {text}" if text else name


def check_new_jobs(jobs: Sequence[NewJob]) -> None:
    """The checks every store applies to an enqueue batch: each task's values are of the
    types and ranges every store and worker accept (see `options`), and no `unique_key`
    is set on a task of a chain.

    :raises InvalidOption: a value of the wrong type or out of range (named).
    :raises ValueError: a `unique_key` on a task of a chain.
    """
    last: NewJob | None = None
    for job in jobs:
        if type(job.function) is not str or type(job.payload) is not str:
            raise InvalidOption(f"task {job.id}: function and payload must be text")
        if last is None or not _shares_checked_values(job, last):
            check_queue(job.queue)
            check_priority(job.priority)
            check_attempts(job.max_attempts)
            if type(job.options) is not StoredOptions:  # checked when made, unless swapped
                check_stored_options(job.options)
                raise InvalidOption(f"task {job.id}: options must be StoredOptions")
        if job.run_at is not None:
            check_time("run_at", job.run_at)
        last = job
    check_unique_keys(jobs)


def _shares_checked_values(job: NewJob, checked: NewJob) -> bool:
    """Whether `job`'s options, queue, priority and attempts are the very objects of a task
    already checked (the tasks of one function share them): the checks' verdict is the
    same."""
    return (
        job.options is checked.options
        and job.queue is checked.queue
        and job.priority is checked.priority
        and job.max_attempts is checked.max_attempts
    )


def check_unique_keys(jobs: Sequence[NewJob]) -> None:
    """Refuse a `unique_key` on a task that is part of a chain (the rule every store applies
    to an enqueue batch).

    :raises ValueError: a `unique_key` on a task of a chain.
    """
    linked = {job.prev_id for job in jobs}
    for job in jobs:
        if job.unique_key is not None and (job.prev_id is not None or job.id in linked):
            raise ValueError(f"task {job.id}: a unique_key cannot be set on a task of a chain")


MAX_ERROR_TEXT = 64 * 1024
"""Characters of an attempt's error or traceback kept in the store: an exception's text
can be megabytes, and it is stored with every attempt and copied into lists and logs."""


def cap(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    """`text`, cut to `limit` characters with a note saying so."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… (cut: {len(text) - limit:,} more characters not stored)"


def decide_failure(
    job: Job,
    error: BaseException,
    policy: RetryPolicy,
    now: float,
    rng: random.Random | None = None,
) -> Failure:
    """Decide what follows attempt `job.attempts` failing with `error`."""
    tb = cap("".join(traceback_module.format_exception(error)))
    if job.attempts >= job.max_attempts or not policy.retries(error):
        return Failure(error=cap(describe(error)), traceback=tb, retry_at=None)
    return Failure(
        error=cap(describe(error)),
        traceback=tb,
        retry_at=now + policy.delay(job.attempts, rng),
    )


def decide_lost(job: Job, now: float, *, dead: bool) -> Failure:
    """Decide what follows an attempt whose worker died or stopped renewing its lease.

    The attempt counts (a task that kills its process must not retry forever); the task is
    queued again at once while it has attempts left, at its old due time, so it keeps its
    place in line instead of waiting behind work that arrived while it was held.
    """
    cause = "the worker running it died" if dead else "its lease expired"
    error = f"WorkerLost: {cause} (worker {job.lease_owner}, attempt {job.attempts})"
    retry_at = min(job.run_at, now) if job.attempts < job.max_attempts else None
    return Failure(error=error, traceback="", retry_at=retry_at)


def permanent_failure(reason: str) -> Failure:
    """A failure no retry can fix, such as a row naming an unregistered function."""
    return Failure(error=cap(reason), traceback="", retry_at=None)
