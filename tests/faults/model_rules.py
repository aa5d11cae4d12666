"""`StoreModel`: the rules of the state machine `test_store_model` runs on every store.

Each rule predicts, from `ModelState`'s record of the tasks, what the store must answer
and how every task must change; `ModelState.observe` checks those predictions.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule
from model_machine import ModelState
from store_model import (
    BACKLOG,
    DELAYS,
    LEASES,
    QUEUE_CHOICES,
    REPORTS,
    RETRY_AFTER,
    RETRYABLE,
    RUN_AT_OFFSETS,
    SLOTS,
    STEPS,
    TWISTS,
    UNLEASED,
    UNSTARTED,
    after_failure,
    chain_from,
    expiry,
    holds,
    is_due,
    keeps,
    new_jobs,
    order_key,
    stored_as,
)
from stores._helpers import complete

from afterward.errors import InvalidTransition, StoreError, TaskNotFound
from afterward.jobs import Failure, Job, JobState, NewJob, Outcome, decide_lost

# -- the state machine -------------------------------------------------------------------

JOB_SPECS = st.tuples(
    st.integers(1, 3),  # chain length
    st.sampled_from([None, None, "k1", "k2"]),  # unique key (single tasks only)
    st.sampled_from(RUN_AT_OFFSETS),
    st.sampled_from([0, 1]),  # priority
    st.sampled_from(["default", "q2"]),
    st.integers(1, 3),  # max_attempts
)


class StoreModel(ModelState):
    """One store, three workers, a fake clock; see `test_store_model`'s docstring."""

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
