"""Small factories shared by the store conformance tests.

Everything here goes through the `Store` protocol only, so that any store passing the
`store` fixture (tests/conftest.py) can run the suite.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Protocol

from afterward.jobs import Failure, Job, NewJob
from afterward.options import StoredOptions
from afterward.stores import Store

__all__ = [
    "LEASE",
    "Clock",
    "acquire_one",
    "complete",
    "complete_many",
    "enqueue_one",
    "failure",
    "new_chain",
    "new_job",
]

LEASE = 30.0
"""The lease the tests take unless they say otherwise, in seconds."""

_ids = itertools.count(1)


class Clock(Protocol):
    """The `clock` fixture: call it for the time, `advance()` it by hand."""

    def __call__(self) -> float: ...

    def advance(self, seconds: float) -> float: ...


def new_job(**kw: Any) -> NewJob:
    """A task like the app makes: options carry `max_attempts`, as `Afterward.prepare` does."""
    n = next(_ids)
    max_attempts = kw.pop("max_attempts", 3)
    fields: dict[str, Any] = {
        "id": f"task-{n:05d}",
        "function": "app.tasks.work",
        "payload": f'{{"args": [{n}], "kwargs": {{}}}}',
        "max_attempts": max_attempts,
        "options": {"max_attempts": max_attempts},
    }
    fields.update(kw)
    fields["options"] = StoredOptions(fields["options"])
    return NewJob(**fields)


def new_chain(length: int, **kw: Any) -> list[NewJob]:
    """`length` tasks linked one behind the other, sharing a chain id (the first's id)."""
    first = new_job(**kw)
    jobs = [first._replace(chain_id=first.id)]
    for _ in range(length - 1):
        jobs.append(new_job(chain_id=first.id, prev_id=jobs[-1].id, **kw))
    return jobs


async def enqueue_one(store: Store, clock: Clock, **kw: Any) -> str:
    """Enqueue one `new_job(**kw)` now and return its id."""
    (job_id,) = await store.enqueue([new_job(**kw)], now=clock())
    return job_id


async def acquire_one(
    store: Store, clock: Clock, worker: str = "w1", *, lease: float = LEASE, **kw: Any
) -> Job:
    """Acquire exactly one task for `worker`, failing the test if there is none."""
    jobs = await store.acquire(worker, now=clock(), lease=lease, limit=1, **kw)
    assert len(jobs) == 1, f"expected one task for {worker}, got {jobs}"
    return jobs[0]


def failure(
    error: str = "ValueError: boom",
    traceback: str = "Traceback (most recent call last):\nValueError: boom\n",
    *,
    retry_at: float | None = None,
) -> Failure:
    """A failed attempt's record: retried at `retry_at`, or failed for good when None."""
    return Failure(error=error, traceback=traceback, retry_at=retry_at)


async def complete_many(
    store: Store, worker: str, attempts: Sequence[tuple[str, int]], *, now: float
) -> set[str]:
    """Complete `attempts` of `worker` (fenced each), taking nothing: what a runner does."""
    done, taken = await store.complete_and_acquire(worker, attempts, now=now, lease=LEASE, limit=0)
    assert taken == []
    return done


async def complete(store: Store, job_id: str, worker: str, attempt: int, *, now: float) -> bool:
    """Complete one attempt of `worker`; whether its fence let it through."""
    return job_id in await complete_many(store, worker, [(job_id, attempt)], now=now)
