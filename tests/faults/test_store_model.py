"""Model-based tests of the stores: a Hypothesis state machine, and one program on every store.

`StoreModel` drives one store through the `Store` protocol only, on a fake clock, with three
worker slots (a killed worker comes back under a new name, as a restarted process does).
Each rule predicts, from the tasks as last read back with `Store.get`, what the store must
answer and how every task must change; after every step the invariants read the whole store
back and compare it with those predictions and with the rules of `afterward.jobs`.

`test_every_store_runs_a_program_alike` runs the same seeded random programs on SQLite,
PostgreSQL and Redis and compares everything they answer, down to the final tasks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import random
import tempfile
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
from conftest import STORE_PARAMS, FakeClock
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from servers import drop_store_data, postgres_url, redis_url, require_server, sqlite_url
from stores._helpers import complete

from afterward.errors import InvalidTransition, StoreError, TaskNotFound
from afterward.jobs import Failure, Job, JobState, NewJob, Outcome, decide_lost
from afterward.options import StoredOptions
from afterward.stores import Counts, JobFilter, Store, store_from_url

pytestmark = pytest.mark.slow

T = TypeVar("T")

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


# -- driving a store from synchronous code ---------------------------------------------


class Harness:
    """One opened store on a fresh URL, driven from synchronous code on a loop of its own."""

    def __init__(self, make_url: Callable[[Path], str]) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="afterward-model-")
        self.url = make_url(Path(self._tmp.name))
        self.loop = asyncio.new_event_loop()
        self.store: Store = store_from_url(self.url)
        try:
            self.run(self.store.open())
        except BaseException:
            self.close()
            raise

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        try:
            self.run(self.store.close())
            self.run(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()
            drop_store_data(self.url)
            self._tmp.cleanup()


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


# -- the state machine -------------------------------------------------------------------

JOB_SPECS = st.tuples(
    st.integers(1, 3),  # chain length
    st.sampled_from([None, None, "k1", "k2"]),  # unique key (single tasks only)
    st.sampled_from(RUN_AT_OFFSETS),
    st.sampled_from([0, 1]),  # priority
    st.sampled_from(["default", "q2"]),
    st.integers(1, 3),  # max_attempts
)


class StoreModel(RuleBasedStateMachine):
    """One store, three workers, a fake clock; see the module docstring."""

    make_url: ClassVar[Callable[[Path], str]]

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.harness = Harness(type(self).make_url)
        self.store = self.harness.store
        self.numbers = itertools.count(1)
        self.jobs: dict[str, Job] = {}
        """Every task, as read back after the last step."""
        # What the current step must have done, checked and cleared by `observe`:
        self.changes: dict[str, dict[str, Any]] = {}
        self.fresh: list[str] = []
        self.closing: dict[str, str] = {}
        """Task → the outcome its open attempt must have been closed with."""
        self.retried: set[str] = set()
        self.acquired: dict[str, Job] = {}
        # The workers' side:
        self.renamed = dict.fromkeys(SLOTS, 0)
        self.dead: list[str] = []
        self.beliefs: dict[str, dict[str, tuple[int, float]]] = {}
        """Worker → task → (attempt, lease expiry) it believes it holds."""
        self.reservations: dict[str, dict[str, float]] = {}
        """Worker → task → expiry of a reservation it believes it has."""
        self.held: list[tuple[str, str, int]] = []
        """Every (worker, task, attempt) ever acquired: who may report late."""

    def teardown(self) -> None:
        self.harness.close()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.harness.run(coro)

    def worker(self, slot: str) -> str:
        n = self.renamed[slot]
        return slot if n == 0 else f"{slot}r{n}"

    def expect(self, job_id: str, **fields: Any) -> None:
        self.changes.setdefault(job_id, {}).update(fields)

    def forget(self, worker: str, job_id: str, attempt: int | None = None) -> None:
        """`worker` no longer believes it holds `job_id` (for `attempt`, if given)."""
        beliefs = self.beliefs.get(worker, {})
        if job_id in beliefs and attempt in (None, beliefs[job_id][0]):
            del beliefs[job_id]
        self.reservations.get(worker, {}).pop(job_id, None)

    def mine(self, worker: str) -> list[str]:
        """The tasks `worker` believes it holds or has reserved."""
        return sorted({*self.beliefs.get(worker, {}), *self.reservations.get(worker, {})})

    # -- producing ------------------------------------------------------------------------

    @initialize(specs=st.lists(JOB_SPECS, min_size=1, max_size=3))
    def start(self, specs: list[tuple[Any, ...]]) -> None:
        """Some work is waiting before the first worker looks."""
        self.enqueue(specs, None, LEASES[0])

    @precondition(lambda self: sum(not j.state.is_terminal for j in self.jobs.values()) < BACKLOG)
    @rule(
        specs=st.lists(JOB_SPECS, min_size=1, max_size=3),
        reserve=st.sampled_from([None, None, None, *SLOTS]),
        lease=st.sampled_from(LEASES),
    )
    def enqueue(self, specs: list[tuple[Any, ...]], reserve: str | None, lease: float) -> None:
        now = self.clock()
        batch = [job for spec in specs for job in new_jobs(self.take_numbers(3), spec, now)]
        owner = None if reserve is None else self.worker(reserve)
        expected = self.predict_enqueue(batch, now, owner, now + lease)
        ids = self.run(self.store.enqueue(batch, now=now, reserve_for=owner, lease=lease))
        assert ids == expected

    def take_numbers(self, n: int) -> list[int]:
        return [next(self.numbers) for _ in range(n)]

    def predict_enqueue(
        self, batch: list[NewJob], now: float, owner: str | None, expires: float
    ) -> list[str]:
        holders = {
            j.unique_key: j.id
            for j in self.jobs.values()
            if j.unique_key and not j.state.is_terminal
        }
        ids = []
        for job in batch:
            if job.unique_key is not None and job.unique_key in holders:
                ids.append(holders[job.unique_key])
                continue
            if job.unique_key is not None:
                holders[job.unique_key] = job.id
            ids.append(job.id)
            self.fresh.append(job.id)
            self.expect(job.id, **stored_as(job, now, owner, expires))
            if job.prev_id is not None:
                self.expect(job.prev_id, next_id=job.id)
            if owner is not None:
                self.reservations.setdefault(owner, {})[job.id] = expires
        return ids

    # -- consuming ------------------------------------------------------------------------

    @rule(
        slot=st.sampled_from(SLOTS),
        limit=st.integers(1, 3),
        queues=st.sampled_from([*QUEUE_CHOICES, "ids"]),
        lease=st.sampled_from(LEASES),
        data=st.data(),
    )
    def acquire(
        self,
        slot: str,
        limit: int,
        queues: tuple[str, ...] | str | None,
        lease: float,
        data: st.DataObject,
    ) -> None:
        """A worker takes due tasks: from some queues, or among given ids (its own
        reservations and a few drawn tasks)."""
        worker, now = self.worker(slot), self.clock()
        if queues == "ids":
            drawn = st.lists(st.sampled_from(sorted(self.jobs)), max_size=3, unique=True)
            picked = data.draw(drawn, label="ids") if self.jobs else []
            ids = list(dict.fromkeys([*sorted(self.reservations.get(worker, {})), *picked]))
            due = [self.jobs[i] for i in ids if is_due(self.jobs[i], now, worker)]
            got = self.run(self.store.acquire(worker, now=now, lease=lease, limit=limit, ids=ids))
        else:
            due = [
                j
                for j in self.jobs.values()
                if is_due(j, now) and (queues is None or j.queue in queues)
            ]
            wanted = None if queues is None else list(queues)
            got = self.run(
                self.store.acquire(worker, now=now, lease=lease, limit=limit, queues=wanted)
            )
        self.took(worker, got, due, limit, now + lease)

    def took(self, worker: str, got: list[Job], due: list[Job], limit: int, expires: float) -> None:
        """Check what `worker` acquired against what was due, and note its new leases."""
        taken = [j.id for j in got]
        assert len(set(taken)) == len(taken), f"a task handed out twice: {taken}"
        assert set(taken) <= {j.id for j in due}, f"not due for {worker}: {taken}"
        assert len(taken) == min(limit, len(due)), f"took {taken} of {[j.id for j in due]}"
        keys = [order_key(j) for j in got]
        assert keys == sorted(keys), f"not returned in order: {taken}"
        passed_over = [order_key(j) for j in due if j.id not in taken]
        assert not keys or not passed_over or max(keys) <= min(passed_over), "out of order"
        for job in got:
            attempt = self.jobs[job.id].attempts + 1
            lease = {"lease_owner": worker, "lease_expires_at": expires}
            self.expect(job.id, state=JobState.RUNNING, attempts=attempt, **lease)
            self.acquired[job.id] = job
            self.reservations.get(worker, {}).pop(job.id, None)
            self.beliefs.setdefault(worker, {})[job.id] = (attempt, expires)
            self.held.append((worker, job.id, attempt))

    def heartbeat(self, data: st.DataObject) -> None:
        """A busy worker renews everything it believes it holds (and maybe a task it does not)."""
        busy = sorted(w for w in {*self.beliefs, *self.reservations} if self.mine(w))
        if not busy:
            return
        worker = data.draw(st.sampled_from(busy), label="renewing")
        extra = data.draw(st.sampled_from(["", *sorted(self.jobs)]), label="extra")
        lease = data.draw(st.sampled_from(LEASES), label="lease")
        self.extend(worker, [*self.mine(worker), *([extra] if extra else [])], lease)

    def extend(self, worker: str, ids: list[str], lease: float) -> None:
        now = self.clock()
        expected = {i for i in ids if keeps(self.jobs.get(i), worker, now)}
        got = self.run(self.store.extend_leases(worker, ids, now=now, lease=lease))
        assert got == expected
        for job_id in ids:  # the worker learns what it still holds
            if job_id in got:
                self.expect(job_id, lease_expires_at=now + lease)
            self.renewed(worker, job_id, now + lease if job_id in got else None)

    def renewed(self, worker: str, job_id: str, expires: float | None) -> None:
        beliefs, reserved = self.beliefs.get(worker, {}), self.reservations.get(worker, {})
        if expires is None:
            beliefs.pop(job_id, None)
            reserved.pop(job_id, None)
        elif job_id in beliefs:
            beliefs[job_id] = (beliefs[job_id][0], expires)
        elif job_id in reserved:
            reserved[job_id] = expires

    @precondition(lambda self: self.held)
    @rule(
        data=st.data(),
        kind=st.sampled_from(REPORTS),
        late=st.booleans(),
        delay=st.sampled_from(DELAYS),
        twist=st.sampled_from(TWISTS),
    )
    def report(self, data: st.DataObject, kind: str, late: bool, delay: float, twist: str) -> None:
        """A worker reports on a task it believes it holds, or (`late`) on any task it ever
        held, `delay` seconds after the last step without renewing its lease. A twisted
        report names another attempt or another worker. Unless the report names the current
        holder and attempt under an unexpired lease, the store must refuse it."""
        mine = [(w, t, a) for w, held in self.beliefs.items() for t, (a, _) in held.items()]
        choices = self.held if late or not mine else sorted(mine)
        worker, job_id, attempt = data.draw(st.sampled_from(choices), label="holder")
        self.clock.advance(delay)
        self.report_as(*self.twisted(data, twist, worker, job_id, attempt), kind)

    def twisted(
        self, data: st.DataObject, twist: str, worker: str, job_id: str, attempt: int
    ) -> tuple[str, str, int]:
        if twist == "other_worker":
            others = sorted({*map(self.worker, SLOTS), *self.dead} - {worker})
            worker = data.draw(st.sampled_from(others), label="as")
        attempt += {"older_attempt": -1, "newer_attempt": 1}.get(twist, 0)
        return worker, job_id, attempt

    def report_as(self, worker: str, job_id: str, attempt: int, kind: str) -> None:
        if kind == "extend":
            self.extend(worker, [job_id], LEASES[0])
        elif kind == "release":
            self.release_ids(worker, [job_id])
        elif kind == "complete":
            self.complete(worker, job_id, attempt)
        else:
            self.fail(worker, job_id, attempt, kind)

    def complete(self, worker: str, job_id: str, attempt: int) -> None:
        job, now = self.jobs[job_id], self.clock()
        live = holds(job, worker, attempt, now)
        accepted = self.run(complete(self.store, job_id, worker, attempt, now=now))
        assert accepted is live, self.fencing_message("complete", job, worker, attempt, live)
        self.forget(worker, job_id, attempt)
        if not live:
            return
        self.expect(job_id, state=JobState.SUCCEEDED, finished_at=now, **UNLEASED)
        self.expect(job_id, last_outcome=Outcome.SUCCEEDED)
        self.closing[job_id] = "succeeded"
        behind = self.jobs.get(job.next_id or "")
        if behind is not None and behind.state is JobState.WAITING:
            state = JobState.SCHEDULED if behind.run_at > now else JobState.QUEUED
            self.expect(behind.id, state=state)

    def fail(self, worker: str, job_id: str, attempt: int, kind: str) -> None:
        job, now = self.jobs[job_id], self.clock()
        after = RETRY_AFTER[kind]
        retry_at = None if after is None else now + after
        failure = Failure(error=f"E: {kind}", traceback=f"Traceback: {kind}", retry_at=retry_at)
        live = holds(job, worker, attempt, now)
        accepted = self.run(self.store.fail(job_id, worker, attempt, failure, now=now))
        assert accepted is live, self.fencing_message("fail", job, worker, attempt, live)
        self.forget(worker, job_id, attempt)
        if live:
            self.expect(job_id, **after_failure(job, failure, now, Outcome.FAILED))
            self.closing[job_id] = "failed"

    def fencing_message(self, op: str, job: Job, worker: str, attempt: int, live: bool) -> str:
        verdict = "must be accepted" if live else "must be refused (stale holder)"
        return (
            f"{op}({job.id}, {worker}, attempt {attempt}) at {self.clock()} {verdict}; the task "
            f"was {job.state.value}, held by {job.lease_owner} for attempt {job.attempts} "
            f"until {job.lease_expires_at}"
        )

    @rule(graceful=st.booleans(), data=st.data())
    def stop(self, graceful: bool, data: st.DataObject) -> None:
        """A worker (a busy one, if any) stops. Gracefully, it hands back everything it holds
        or has reserved (and maybe a task it does not). Killed, it renews nothing again, and
        its slot restarts under a new name."""
        slot = data.draw(st.sampled_from([s for s in SLOTS if self.mine(self.worker(s))] or SLOTS))
        worker = self.worker(slot)
        if graceful:
            extra = data.draw(st.sampled_from(["", *sorted(self.jobs)]), label="extra")
            self.release_ids(worker, sorted({*self.mine(worker), *([extra] if extra else [])}))
        else:
            self.dead.append(worker)
            self.renamed[slot] += 1
            self.beliefs.pop(worker, None)
            self.reservations.pop(worker, None)

    def release_ids(self, worker: str, ids: list[str]) -> None:
        now = self.clock()
        jobs = [self.jobs[i] for i in ids]
        handed = [j for j in jobs if holds(j, worker, j.attempts, now)]
        dropped = [j for j in jobs if j.lease_owner == worker and j.state in UNSTARTED]
        count = self.run(self.store.release(worker, ids, now=now))
        assert count == len(handed), f"release by {worker} handed back {count} of {ids}"
        for job in handed:
            bigger = job.max_attempts + 1  # last_outcome stays: a hand-back does not count
            self.expect(job.id, state=JobState.QUEUED, max_attempts=bigger, **UNLEASED)
            self.closing[job.id] = "released"
        for job in dropped:
            self.expect(job.id, **UNLEASED)
        for job_id in ids:
            self.forget(worker, job_id)

    @rule(
        seconds=st.sampled_from(STEPS),
        heartbeat=st.booleans(),
        sweep=st.sampled_from([None, "expired", "dead"]),
        data=st.data(),
    )
    def advance(
        self, seconds: float, heartbeat: bool, sweep: str | None, data: st.DataObject
    ) -> None:
        """Time passes; then maybe a worker renews its leases, and maybe the recovery sweep
        runs, told of the dead workers or not."""
        self.clock.advance(seconds)
        if heartbeat:
            self.heartbeat(data)
        if sweep is not None:
            self.recover(with_dead=sweep == "dead")

    def recover(self, with_dead: bool) -> None:
        now = self.clock()
        dead = [*self.dead, "ghost"] if with_dead else []
        running = [j for j in self.jobs.values() if j.state is JobState.RUNNING]
        lost = [j for j in running if expiry(j) < now or j.lease_owner in dead]
        freed = [j for j in self.jobs.values() if j.state in UNSTARTED and j.lease_owner in dead]
        taken = self.run(self.store.recover(now=now, dead_workers=dead))
        assert taken == len(lost), f"recover took {taken}, expected {[j.id for j in lost]}"
        for job in lost:
            failure = decide_lost(job, now, dead=job.lease_owner in dead)
            self.expect(job.id, **after_failure(job, failure, now, Outcome.LOST))
            self.closing[job.id] = "lost"
        for job in freed:
            self.expect(job.id, **UNLEASED)

    # -- administration -------------------------------------------------------------------

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), op=st.sampled_from(["cancel", "retry"]))
    def admin(self, data: st.DataObject, op: str) -> None:
        """Someone cancels or retries a task (from the dashboard or the command line)."""
        if op == "cancel":
            self.cancel(data)
        else:
            self.retry(data)

    def cancel(self, data: st.DataObject) -> None:
        unstarted = sorted(i for i, j in self.jobs.items() if j.state in UNSTARTED)
        anything = [*sorted(self.jobs), "no-such-task"]
        job_id = data.draw(st.sampled_from(unstarted or anything) | st.sampled_from(anything))
        job, now = self.jobs.get(job_id), self.clock()
        if job is None:
            with pytest.raises(TaskNotFound):
                self.run(self.store.cancel(job_id, now=now))
            return
        if job.state not in UNSTARTED:
            with pytest.raises(InvalidTransition):
                self.run(self.store.cancel(job_id, now=now))
            return
        expected = chain_from(self.jobs, job, JobState.WAITING)
        assert self.run(self.store.cancel(job_id, now=now)) == expected
        for cancelled in expected:
            self.expect(cancelled, state=JobState.CANCELLED, finished_at=now, **UNLEASED)
            for reserved in self.reservations.values():
                reserved.pop(cancelled, None)

    def retry(self, data: st.DataObject) -> None:
        finished = sorted(i for i, j in self.jobs.items() if j.state in RETRYABLE)
        anything = [*sorted(self.jobs), "no-such-task"]
        job_id = data.draw(st.sampled_from(finished or anything) | st.sampled_from(anything))
        job, now = self.jobs.get(job_id), self.clock()
        if job is None:
            with pytest.raises(TaskNotFound):
                self.run(self.store.retry(job_id, now=now))
        elif job.state not in RETRYABLE:
            with pytest.raises(InvalidTransition):
                self.run(self.store.retry(job_id, now=now))
        elif self.unique_key_taken(job):
            # Not in the contract; every store refuses rather than hold a key twice.
            with pytest.raises(StoreError):
                self.run(self.store.retry(job_id, now=now))
        else:
            self.run(self.store.retry(job_id, now=now))
            self.retried_as_expected(job, now)

    def unique_key_taken(self, job: Job) -> bool:
        return job.unique_key is not None and any(
            j.unique_key == job.unique_key and j.id != job.id and not j.state.is_terminal
            for j in self.jobs.values()
        )

    def retried_as_expected(self, job: Job, now: float) -> None:
        before = self.jobs.get(job.prev_id or "")
        runnable = before is None or before.state is JobState.SUCCEEDED
        state = JobState.QUEUED if runnable else JobState.WAITING
        budget = job.attempts + int(job.options["max_attempts"])
        self.expect(job.id, state=state, run_at=now, finished_at=None, max_attempts=budget)
        self.expect(job.id, **UNLEASED)
        behind = chain_from(self.jobs, job, JobState.CANCELLED)[1:]
        for job_id in behind:
            self.expect(job_id, state=JobState.WAITING, finished_at=None, **UNLEASED)
        self.retried.update([job.id, *behind])

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def observe(self) -> None:
        """Read everything back, compare it with the predictions and the rules, remember it."""
        jobs = {i: self.run(self.store.get(i)) for i in [*self.jobs, *self.fresh]}
        listed = self.run(self.store.list(JobFilter(), limit=100_000))
        counts = self.run(self.store.counts())
        holders = self.run(self.store.lease_holders())
        for job in jobs.values():
            self.check_fields(job)
            self.check_monotonic(job)
            self.check_history(job)
        check_listing(jobs, listed, counts, holders)
        check_chains(jobs)
        check_unique_keys(jobs)
        self.check_beliefs(jobs)
        self.jobs = jobs
        self.changes, self.fresh, self.closing = {}, [], {}
        self.retried, self.acquired = set(), {}

    def check_fields(self, job: Job) -> None:
        """Each task is exactly as predicted: unchanged but for what the step changed."""
        assert isinstance(job.state, JobState)
        old = self.jobs.get(job.id)
        expected = ({} if old is None else fields_of(old)) | self.changes.get(job.id, {})
        assert set(expected) == set(FIELDS), f"{job.id}: the model lost track of it"
        actual = fields_of(job)
        diff = {k: (expected[k], actual[k]) for k in FIELDS if expected[k] != actual[k]}
        assert not diff, f"{job.id}: (expected, stored) differ: {diff}"
        if job.id in self.acquired:
            returned = fields_of(self.acquired[job.id])
            assert returned == actual, f"acquire returned {returned}, stored {actual}"

    def check_monotonic(self, job: Job) -> None:
        old = self.jobs.get(job.id)
        if old is None:
            return
        assert job.attempts >= old.attempts, f"{job.id}: attempts went down"
        assert job.max_attempts >= old.max_attempts, f"{job.id}: max_attempts went down"
        if old.state is JobState.SUCCEEDED or (
            old.state.is_terminal and job.id not in self.retried
        ):
            assert job.state is old.state, f"{job.id}: left {old.state.value} for {job.state}"

    def check_history(self, job: Job) -> None:
        """One attempt record per attempt, numbered 1..attempts; only a running task's last
        attempt is open; closed attempts never change; each closes with its outcome."""
        history, now = job.history, self.clock()
        assert [a.number for a in history] == list(range(1, job.attempts + 1)), job
        running = job.state is JobState.RUNNING
        for attempt in history[:-1] if running else history:
            assert attempt.outcome in OUTCOMES and attempt.finished_at is not None, job
        if running:
            last = history[-1]
            assert (last.outcome, last.finished_at, last.worker) == (None, None, job.lease_owner)
        if job.state is JobState.SUCCEEDED:
            assert history and history[-1].outcome == "succeeded", job
        old = self.jobs.get(job.id)
        if old is None:
            return
        closed = [a for a in old.history if a.outcome is not None]
        assert list(history[: len(closed)]) == closed, f"{job.id}: history was rewritten"
        if job.id in self.closing:
            last = history[len(old.history) - 1]
            assert (last.outcome, last.finished_at) == (self.closing[job.id], now), job
        if job.attempts > old.attempts:
            started = history[-1]
            assert (started.started_at, started.worker) == (now, job.lease_owner), job

    def check_beliefs(self, jobs: dict[str, Job]) -> None:
        """What workers believe they hold under a live lease, they hold: so no two workers
        believe they hold one task. Live reservations are as their owners believe."""
        now = self.clock()
        believers: Counter[str] = Counter()
        for worker, mine in self.beliefs.items():
            for job_id, (attempt, expires) in mine.items():
                if expires < now:
                    continue
                believers[job_id] += 1
                job = jobs[job_id]
                stored = (job.state, job.lease_owner, job.attempts, job.lease_expires_at)
                assert stored == (JobState.RUNNING, worker, attempt, expires), (worker, job)
        assert all(n == 1 for n in believers.values()), f"held twice: {believers}"
        for worker, reserved in self.reservations.items():
            for job_id, expires in reserved.items():
                job = jobs[job_id]
                if expires >= now:
                    assert job.state in UNSTARTED, (worker, job)
                    assert (job.lease_owner, job.lease_expires_at) == (worker, expires), job


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


@pytest.mark.parametrize("make_url", STORE_PARAMS)
def test_store_follows_the_model(make_url: Callable[[Path], str], tmp_path: Path) -> None:
    make_url(tmp_path)  # skips (or fails, in CI) when the store's server is unreachable
    machine = type(f"StoreModel_{make_url.__name__}", (StoreModel,), {"make_url": make_url})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=40,
            deadline=None,
            database=None,
            print_blob=True,
        ),
    )


# -- one program, every store ------------------------------------------------------------

PROGRAM_LENGTH = 200
SEEDS = range(20)
PURGE_STATES = ((JobState.SUCCEEDED,), (JobState.FAILED, JobState.CANCELLED))


def _spec(r: random.Random) -> tuple[Any, ...]:
    length = r.choice([1, 1, 2, 3])
    key = r.choice([None, None, "k1", "k2"])
    run_at = r.choice(RUN_AT_OFFSETS)
    return (length, key, run_at, r.choice([0, 1]), r.choice(["default", "q2"]), r.randint(1, 3))


_DRAW: dict[str, tuple[float, Callable[[random.Random], tuple[Any, ...]]]] = {
    "enqueue": (
        2,
        lambda r: (
            tuple(_spec(r) for _ in range(r.randint(1, 3))),
            r.choice([None, None, *SLOTS]),
            r.choice(LEASES),
        ),
    ),
    "acquire": (
        3,
        lambda r: (r.choice(SLOTS), r.randint(1, 3), r.choice(QUEUE_CHOICES), r.choice(LEASES)),
    ),
    "acquire_ids": (
        1,
        lambda r: (r.choice(SLOTS), (r.randrange(999), r.randrange(999)), r.randint(1, 2), 30.0),
    ),
    "extend": (1, lambda r: (r.choice(SLOTS), r.choice(LEASES), r.randrange(999))),
    "report": (6, lambda r: (r.choice(REPORTS), r.randrange(999), r.choice(TWISTS))),
    "release": (1, lambda r: (r.choice(SLOTS),)),
    "recover": (1, lambda r: (r.random() < 0.5,)),
    "cancel": (1, lambda r: (r.randrange(999),)),
    "retry": (1, lambda r: (r.randrange(999),)),
    "advance": (2, lambda r: (r.choice(STEPS),)),
    "kill": (0.5, lambda r: (r.choice(SLOTS),)),
    "purge": (0.3, lambda r: (r.randrange(len(PURGE_STATES)), r.choice([0.0, 30.0]))),
    "observe": (1, lambda r: ()),
}


def make_program(seed: int, length: int = PROGRAM_LENGTH) -> list[tuple[Any, ...]]:
    """`length` random operations; task and worker references are resolved when run."""
    r = random.Random(seed)
    kinds = list(_DRAW)
    weights = [_DRAW[k][0] for k in kinds]
    return [(kind, *_DRAW[kind][1](r)) for kind in r.choices(kinds, weights, k=length)]


class ProgramRun:
    """Runs a program on one store and records everything the store answers.

    References to tasks ("the 7th task", "the 3rd most recent acquisition") are resolved
    from this run's own answers, so two stores get the same calls as long as they have
    answered alike so far."""

    def __init__(self, store: Store, run: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self.store, self.run = store, run
        self.clock = FakeClock()
        self.numbers = itertools.count(1)
        self.ids: list[str] = []
        self.held: list[tuple[str, str, int]] = []
        self.renamed = dict.fromkeys(SLOTS, 0)
        self.dead: list[str] = []

    def worker(self, slot: str) -> str:
        n = self.renamed[slot]
        return slot if n == 0 else f"{slot}r{n}"

    def task(self, pick: int) -> str:
        return self.ids[pick % len(self.ids)] if self.ids else "no-such-task"

    def step(self, op: tuple[Any, ...]) -> Any:
        kind, *args = op
        try:
            return getattr(self, f"do_{kind}")(*args)
        except Exception as exc:  # the type is part of the answer
            return ("raised", type(exc).__name__)

    def do_enqueue(self, specs: Iterable[tuple[Any, ...]], slot: str | None, lease: float) -> Any:
        now = self.clock()
        numbers = [next(self.numbers) for _ in range(9)]
        batch = [j for n, spec in enumerate(specs) for j in new_jobs(numbers[3 * n :], spec, now)]
        owner = None if slot is None else self.worker(slot)
        ids = self.run(self.store.enqueue(batch, now=now, reserve_for=owner, lease=lease))
        self.ids.extend(i for i in dict.fromkeys(ids) if i not in self.ids)
        return ids

    def do_acquire(self, slot: str, limit: int, queues: Sequence[str] | None, lease: float) -> Any:
        worker, now = self.worker(slot), self.clock()
        wanted = None if queues is None else list(queues)
        got = self.run(self.store.acquire(worker, now=now, lease=lease, limit=limit, queues=wanted))
        return self.took(worker, got)

    def do_acquire_ids(self, slot: str, picks: Sequence[int], limit: int, lease: float) -> Any:
        worker, now = self.worker(slot), self.clock()
        ids = list(dict.fromkeys(self.task(p) for p in picks))
        got = self.run(self.store.acquire(worker, now=now, lease=lease, limit=limit, ids=ids))
        return self.took(worker, got)

    def took(self, worker: str, got: list[Job]) -> Any:
        self.held.extend((worker, j.id, j.attempts) for j in got)
        return [dataclasses.asdict(j) for j in got]

    def do_extend(self, slot: str, lease: float, pick: int) -> Any:
        worker = self.worker(slot)
        ids = sorted({t for w, t, _ in self.held if w == worker} | {self.task(pick)})
        return sorted(
            self.run(self.store.extend_leases(worker, ids, now=self.clock(), lease=lease))
        )

    def do_report(self, kind: str, pick: int, twist: str) -> Any:
        if not self.held:
            return "nothing held"
        recent = self.held[-5:]
        worker, job_id, attempt = recent[pick % len(recent)]
        if twist == "other_worker":
            worker = self.worker(SLOTS[(SLOTS.index(worker[:2]) + 1) % len(SLOTS)])
        attempt += {"older_attempt": -1, "newer_attempt": 1}.get(twist, 0)
        now = self.clock()
        if kind == "extend":
            return sorted(self.run(self.store.extend_leases(worker, [job_id], now=now, lease=10)))
        if kind == "release":
            return self.run(self.store.release(worker, [job_id], now=now))
        if kind == "complete":
            return self.run(complete(self.store, job_id, worker, attempt, now=now))
        after = RETRY_AFTER[kind]
        retry_at = None if after is None else now + after
        failure = Failure(error=f"E: {kind}", traceback=f"Traceback: {kind}", retry_at=retry_at)
        return self.run(self.store.fail(job_id, worker, attempt, failure, now=now))

    def do_release(self, slot: str) -> Any:
        worker = self.worker(slot)
        ids = sorted({t for w, t, _ in self.held if w == worker})
        return self.run(self.store.release(worker, ids, now=self.clock()))

    def do_recover(self, with_dead: bool) -> Any:
        dead = [*self.dead, "ghost"] if with_dead else []
        return self.run(self.store.recover(now=self.clock(), dead_workers=dead))

    def do_cancel(self, pick: int) -> Any:
        return self.run(self.store.cancel(self.task(pick), now=self.clock()))

    def do_retry(self, pick: int) -> Any:
        """Retry a failed or cancelled task if there is one, else any task."""
        where = JobFilter(states=sorted(RETRYABLE))
        finished = sorted(j.id for j in self.run(self.store.list(where, limit=100_000)))
        job_id = finished[pick % len(finished)] if finished else self.task(pick)
        return job_id, self.run(self.store.retry(job_id, now=self.clock()))

    def do_advance(self, seconds: float) -> Any:
        return self.clock.advance(seconds)

    def do_kill(self, slot: str) -> Any:
        self.dead.append(self.worker(slot))
        self.renamed[slot] += 1

    def do_purge(self, states: int, age: float) -> Any:
        before = self.clock() - age
        return self.run(self.store.purge(states=PURGE_STATES[states], finished_before=before))

    def do_observe(self) -> Any:
        counts = sorted((q, s.value, n) for (q, s), n in self.run(self.store.counts()).items())
        listed = [j.id for j in self.run(self.store.list(JobFilter(), limit=100_000))]
        return counts, sorted(self.run(self.store.lease_holders())), listed

    def final(self) -> Any:
        """Every task ever enqueued, as stored now, with its history."""
        return [self.step(("get", job_id)) for job_id in self.ids]

    def do_get(self, job_id: str) -> Any:
        return dataclasses.asdict(self.run(self.store.get(job_id)))


def run_program(make_url: Callable[[Path], str], program: list[tuple[Any, ...]]) -> list[Any]:
    harness = Harness(make_url)
    try:
        runner = ProgramRun(harness.store, harness.run)
        return [runner.step(op) for op in program] + [runner.final()]
    finally:
        harness.close()


STORES: dict[str, Callable[[Path], str]] = {
    "sqlite": sqlite_url,
    "postgres": postgres_url,
    "redis": redis_url,
}


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("seed", SEEDS)
def test_every_store_runs_a_program_alike(seed: int) -> None:
    require_server("postgres")
    require_server("redis")
    program = make_program(seed)
    answers = {name: run_program(make_url, program) for name, make_url in STORES.items()}
    reference = answers.pop("sqlite")
    for name, theirs in answers.items():
        for n, (ours, other) in enumerate(zip(reference, theirs, strict=True)):
            step = program[n] if n < len(program) else ("final get of every task",)
            assert other == ours, f"seed {seed}, step {n} {step}: sqlite {ours!r}, {name} {other!r}"
