"""Seeded random programs of store calls, and a runner that records everything a store
answers, so that `test_every_store_runs_a_program_alike` can compare the stores.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Callable, Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any

from conftest import FakeClock
from model_machine import Harness
from servers import postgres_url, redis_url, sqlite_url
from store_model import (
    LEASES,
    QUEUE_CHOICES,
    REPORTS,
    RETRY_AFTER,
    RETRYABLE,
    RUN_AT_OFFSETS,
    SLOTS,
    STEPS,
    TWISTS,
    new_jobs,
)
from stores._helpers import complete

from afterward.jobs import Failure, Job, JobState
from afterward.stores import JobFilter, Store

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
