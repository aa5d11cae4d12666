"""Driving one store from synchronous code, and the state machine's state and invariants.

`ModelState` holds what the workers believe and what the current step must have changed,
and checks the store against it after every step; `model_rules.StoreModel` adds the rules,
so that neither half outgrows a module.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from conftest import FakeClock
from hypothesis.stateful import RuleBasedStateMachine, invariant
from servers import drop_store_data
from store_model import (
    FIELDS,
    OUTCOMES,
    SLOTS,
    UNSTARTED,
    check_chains,
    check_listing,
    check_unique_keys,
    fields_of,
)

from afterward.jobs import Job, JobState
from afterward.stores import JobFilter, Store, store_from_url

T = TypeVar("T")


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


class ModelState(RuleBasedStateMachine):
    """The state of `StoreModel` and the invariants it checks after every step."""

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
