"""The reference model of a store: the rules a task follows, as functions of the task as
last read back, and the checks the whole of a store's contents must pass.

It drives no store: `model_machine` and `model_rules` predict with it, and
`store_programs` draws its programs from the same choices.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any

from afterward.jobs import Failure, Job, JobState, NewJob, Outcome
from afterward.options import StoredOptions
from afterward.stores import Counts

SLOTS = ("w1", "w2", "w3")
"""Worker slots; the worker in a slot is renamed each time it is killed."""
LEASES = (10.0, 30.0)
STEPS = (0.5, 1.0, 5.0, 10.0, 10.5, 30.0, 31.0, 61.0)
"""Clock steps: small ones, and ones that land on or just past a lease's end."""
RUN_AT_OFFSETS = (None, None, -5.0, 5.0, 20.0)
QUEUE_CHOICES: tuple[tuple[str, ...] | None, ...] = (None, ("default",), ("q2",))
REPORTS = ("complete", "complete", "fail", "fail_now", "fail_later", "release", "extend")
TWISTS = ("as_is", "as_is", "other_worker", "older_attempt", "newer_attempt")
"""How a report may be confused: another attempt's number, or another worker's name."""
DELAYS = (0.0, 0.0, 0.0, 10.0, 10.5, 31.0)
"""How long a task runs before its worker reports, without renewing its lease."""
EXAMPLES = int(os.environ.get("AFTERWARD_MODEL_EXAMPLES", "25"))
"""Examples per store; raise it (say to 1000) to search harder than CI does."""
BACKLOG = 12
"""No more tasks are enqueued while this many are unfinished: workers get to them."""
RETRY_AFTER = {"fail": None, "fail_now": 0.0, "fail_later": 15.0}
"""When a failed attempt is retried, by kind of report: never, at once, later."""

UNSTARTED = frozenset({JobState.WAITING, JobState.QUEUED, JobState.SCHEDULED})
DUE = frozenset({JobState.QUEUED, JobState.SCHEDULED})
RETRYABLE = frozenset({JobState.FAILED, JobState.CANCELLED})
OUTCOMES = frozenset({"succeeded", "failed", "lost", "released"})
UNLEASED: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}
FIELDS = tuple(f.name for f in dataclasses.fields(Job) if f.name != "history")
"""Every field of a task but its history, which is checked on its own."""


# -- the rules a store must follow, as functions of a task as last read back -----------


def expiry(job: Job) -> float:
    assert job.lease_expires_at is not None, f"{job.id}: a lease owner without an expiry"
    return job.lease_expires_at


def holds(job: Job | None, worker: str, attempt: int, now: float) -> bool:
    """Fencing: `worker` holds `job`'s attempt `attempt` under an unexpired lease."""
    return (
        job is not None
        and job.state is JobState.RUNNING
        and (job.lease_owner, job.attempts) == (worker, attempt)
        and expiry(job) >= now
    )


def keeps(job: Job | None, worker: str, now: float) -> bool:
    """Whether `extend_leases` renews `job` for `worker`: its live lease or reservation."""
    return (
        job is not None
        and job.lease_owner == worker
        and not job.state.is_terminal
        and expiry(job) >= now
    )


def is_due(job: Job, now: float, worker: str | None = None) -> bool:
    """Whether `job` can be acquired now; by `worker` through `ids` if it is given."""
    if job.state not in DUE or job.run_at > now:
        return False
    if job.lease_owner is None or job.lease_owner == worker:
        return True
    return expiry(job) < now


def order_key(job: Job) -> tuple[int, float]:
    """Acquisition order: highest priority first, then oldest run_at."""
    return (-job.priority, job.run_at)


def after_failure(job: Job, failure: Failure, now: float, outcome: Outcome) -> dict[str, Any]:
    """How a running task changes when its attempt fails (or is lost) with `failure`."""
    if failure.retry_at is None:
        state, run_at, finished = JobState.FAILED, job.run_at, now
    else:
        state = JobState.SCHEDULED if failure.retry_at > now else JobState.QUEUED
        run_at, finished = failure.retry_at, None
    changes = {"state": state, "run_at": run_at, "finished_at": finished}
    return {**changes, "last_error": failure.error, "last_outcome": outcome, **UNLEASED}


def chain_from(jobs: dict[str, Job], job: Job, state: JobState) -> list[str]:
    """`job`'s id and those of the tasks behind it in its chain, while they are in `state`."""
    ids = [job.id]
    behind = jobs.get(job.next_id or "")
    while behind is not None and behind.state is state:
        ids.append(behind.id)
        behind = jobs.get(behind.next_id or "")
    return ids


def fields_of(job: Job) -> dict[str, Any]:
    return {name: getattr(job, name) for name in FIELDS}


def new_jobs(numbers: Sequence[int], spec: tuple[Any, ...], now: float) -> list[NewJob]:
    """A single task or a chain, from a spec: (length, key, run_at offset, priority, queue,
    max_attempts). Ids are ``t<number>``, numbered per example so that failures replay."""
    length, key, offset, priority, queue, max_attempts = spec
    ids = [f"t{n:03d}" for n in numbers[:length]]
    return [
        NewJob(
            id=job_id,
            function="app.tasks.work",
            payload=f'{{"args": ["{job_id}"], "kwargs": {{}}}}',
            queue=queue,
            priority=priority,
            run_at=None if offset is None else now + offset,
            max_attempts=max_attempts,
            options=StoredOptions({"max_attempts": max_attempts}),
            chain_id=ids[0] if length > 1 else None,
            prev_id=ids[n - 1] if n else None,
            unique_key=key if length == 1 else None,
        )
        for n, job_id in enumerate(ids)
    ]


def stored_as(job: NewJob, now: float, owner: str | None, expires: float) -> dict[str, Any]:
    """Every field a freshly enqueued task must have."""
    run_at = now if job.run_at is None else job.run_at
    if job.prev_id is not None:
        state = JobState.WAITING
    else:
        state = JobState.SCHEDULED if run_at > now else JobState.QUEUED
    given = job._asdict()
    return {
        **given,
        "state": state,
        "run_at": run_at,
        "attempts": 0,
        "next_id": None,
        "lease_owner": owner,
        "lease_expires_at": expires if owner else None,
        "created_at": now,
        "finished_at": None,
        "last_error": None,
        "last_outcome": None,
    }


def check_listing(
    jobs: dict[str, Job], listed: list[Job], counts: Counts, holders: list[str]
) -> None:
    """`list`, `counts` and `lease_holders` agree with `get`."""
    assert sorted(j.id for j in listed) == sorted(jobs), "list() does not show every task"
    for job in listed:
        assert fields_of(job) == fields_of(jobs[job.id]), f"list() and get() differ: {job.id}"
    created = [j.created_at for j in listed]
    assert created == sorted(created, reverse=True), "list() is not newest first"
    tally = Counter((j.queue, j.state) for j in listed)
    assert {k: n for k, n in counts.items() if n} == dict(tally), f"counts() {counts}"
    assert len(holders) == len(set(holders)), f"lease_holders() repeats: {holders}"
    assert set(holders) == {j.lease_owner for j in jobs.values() if j.lease_owner}


def check_chains(jobs: dict[str, Job]) -> None:
    """Links go both ways; a task runs only after its predecessor succeeded, and waits only
    while it has not."""
    for job in jobs.values():
        if job.next_id is not None:
            assert jobs[job.next_id].prev_id == job.id, job
        if job.prev_id is None:
            assert job.state is not JobState.WAITING, f"{job.id} waits for nothing"
            continue
        before = jobs[job.prev_id]
        assert before.next_id == job.id, before
        if before.state is JobState.SUCCEEDED:
            assert job.state is not JobState.WAITING, f"{job.id} waits for a succeeded task"
        else:
            allowed = (JobState.WAITING, JobState.CANCELLED)
            assert job.state in allowed, f"{job.id} is {job.state.value} before {before.id} ran"


def check_unique_keys(jobs: dict[str, Job]) -> None:
    holders = Counter(
        j.unique_key for j in jobs.values() if j.unique_key and not j.state.is_terminal
    )
    assert all(n == 1 for n in holders.values()), f"a unique key held twice: {holders}"
