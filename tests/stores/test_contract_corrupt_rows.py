"""One corrupt row never stops the queue (issue 16, finding 4), on every store.

Each case writes one row no afterward would write straight into the store
(`faults.corrupt_rows`), with good tasks behind it in its queue and another. The good
tasks are taken and run; the corrupt row ends `failed` with a ``CorruptRow: …`` reason
(or, where it never comes due, stays where it is); `get`, `list` and `counts` show it
without raising: fields that cannot be read hold placeholders, a state no task has reads
as `failed`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from servers import drop_store_data, postgres_url, redis_url, sqlite_url

from afterward import Afterward
from afterward.jobs import Job, JobState
from afterward.stores import JobFilter, Store, store_from_url
from afterward.testing import drain
from faults.corrupt_rows import CASES, NEVER_DUE, REFUSED, corrupt, kind_of, write_corrupt

from ._helpers import LEASE, new_job

_KINDS: list[tuple[str, Callable[[Path], str], list[pytest.MarkDecorator]]] = [
    ("sqlite", sqlite_url, []),
    ("postgres", postgres_url, [pytest.mark.postgres]),
    ("redis", redis_url, [pytest.mark.redis]),
]
_CASES = [
    pytest.param((make_url, case), id=f"{kind}-{case}", marks=marks)
    for kind, make_url, marks in _KINDS
    for case in CASES[kind]
]
_RUNNING_CASES = [
    pytest.param((make_url, case), id=f"{kind}-{case}", marks=marks)
    for kind, make_url, marks in _KINDS
    for case in CASES[kind]
    if case != "attempts_at_limit"  # a running row at the limit still reads: it is just lost
]
_REFUSED = [
    pytest.param((make_url, case), id=f"{kind}-{case}", marks=marks)
    for kind, make_url, marks in _KINDS
    for case in REFUSED[kind]
]

ran: list[str] = []


async def record(key: str) -> None:
    """The good tasks' function: notes that it ran."""
    ran.append(key)


@pytest.fixture(params=_CASES)
def url_and_case(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    make_url, case = request.param
    url: str = make_url(tmp_path)
    request.addfinalizer(lambda: drop_store_data(url))
    return url, case


@pytest.fixture
async def opened(url_and_case: tuple[str, str]) -> AsyncIterator[Store]:
    store = store_from_url(url_and_case[0])
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def _due(url: str, case: str) -> bool:
    return (kind_of(url), case) not in NEVER_DUE


async def _good_tasks(store: Store) -> tuple[str, str]:
    """One good task in the corrupt row's queue and one in another, stored after it."""
    now = time.time()
    same, other = new_job(), new_job(queue="other")
    return tuple(await store.enqueue([same, other], now=now))  # type: ignore[return-value]


async def _shown_without_error(store: Store, corrupt_id: str, *, total: int) -> Job:
    """`get`, `list` and `counts` answer, and agree on the corrupt row; return it."""
    job = await store.get(corrupt_id)
    listed = {j.id: j for j in await store.list(JobFilter(), limit=100)}
    assert set(listed) >= {corrupt_id}
    assert listed[corrupt_id].state is job.state
    counts = await store.counts()
    assert sum(counts.values()) == total
    assert counts.get((job.queue, job.state), 0) >= 1
    if job.state is JobState.FAILED or job.last_error is not None:
        assert job.last_error is not None and job.last_error.startswith("CorruptRow: ")
        assert len(job.last_error) < 300  # a reason quotes a bad value cut short
    return job


def _assert_failed_for_good(job: Job, url: str, case: str) -> None:
    if _due(url, case):
        assert job.state is JobState.FAILED, job
        assert job.last_error is not None and job.last_error.startswith("CorruptRow: ")
        assert job.lease_owner is None
    else:
        assert job.state is not JobState.RUNNING


async def test_the_batch_runs_and_the_corrupt_row_fails(
    opened: Store, url_and_case: tuple[str, str]
) -> None:
    url, case = url_and_case
    bad = await write_corrupt(url, case)
    same, other = await _good_tasks(opened)

    taken = await opened.acquire("w1", now=time.time() + 1, lease=LEASE, limit=3)

    assert sorted(j.id for j in taken) == sorted([same, other])
    assert all(j.state is JobState.RUNNING for j in taken)
    job = await _shown_without_error(opened, bad, total=3)
    _assert_failed_for_good(job, url, case)
    assert await opened.extend_leases("w1", [same, other], now=time.time() + 1, lease=LEASE) == {
        same,
        other,
    }


async def test_a_batch_of_one_reaches_past_the_corrupt_row(
    opened: Store, url_and_case: tuple[str, str]
) -> None:
    url, case = url_and_case
    bad = await write_corrupt(url, case)
    same, _ = await _good_tasks(opened)

    taken = await opened.acquire("w1", now=time.time() + 1, lease=LEASE, limit=1)

    assert [j.id for j in taken] == [same]
    _assert_failed_for_good(await _shown_without_error(opened, bad, total=3), url, case)


async def test_complete_and_acquire_past_the_corrupt_row(
    opened: Store, url_and_case: tuple[str, str]
) -> None:
    url, case = url_and_case
    (first,) = await opened.enqueue([new_job()], now=time.time() - 5)
    (running,) = await opened.acquire("w1", now=time.time(), lease=LEASE, limit=1)
    assert running.id == first
    bad = await write_corrupt(url, case)
    same, other = await _good_tasks(opened)

    done, taken = await opened.complete_and_acquire(
        "w1", [(first, running.attempts)], now=time.time() + 1, lease=LEASE, limit=2
    )

    assert done == {first}
    assert sorted(j.id for j in taken) == sorted([same, other])
    _assert_failed_for_good(await _shown_without_error(opened, bad, total=4), url, case)


@pytest.fixture(params=_RUNNING_CASES)
def running_case(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    make_url, case = request.param
    url: str = make_url(tmp_path)
    request.addfinalizer(lambda: drop_store_data(url))
    return url, case


async def test_recovery_and_renewal_pass_a_running_row_that_went_bad(
    running_case: tuple[str, str],
) -> None:
    url, case = running_case
    opened = store_from_url(url)
    await opened.open()
    try:
        await _recovery_and_renewal(opened, url, case)
    finally:
        await opened.close()


async def _recovery_and_renewal(opened: Store, url: str, case: str) -> None:
    (victim,) = await opened.enqueue([new_job()], now=time.time() - 5)
    await opened.acquire("w1", now=time.time(), lease=LEASE, limit=1)
    await corrupt(url, victim, case)
    same, other = await _good_tasks(opened)

    assert await opened.extend_leases("w1", [victim], now=time.time(), lease=LEASE) <= {victim}
    await opened.recover(now=time.time() + 2 * LEASE, dead_workers=["w1"])

    # Failed as corrupt (a state no task has reads as failed), not run again.
    job = await _shown_without_error(opened, victim, total=3)
    assert job.state is JobState.FAILED
    assert job.last_error is not None and job.last_error.startswith("CorruptRow: ")
    taken = await opened.acquire("w2", now=time.time() + 1, lease=LEASE, limit=3)
    assert {same, other} <= {j.id for j in taken}


async def test_a_worker_runs_the_task_behind_the_corrupt_row(
    url_and_case: tuple[str, str],
) -> None:
    url, case = url_and_case
    bad = await write_corrupt(url, case)
    app = Afterward(url=url, execution="workers", tasks=[record])
    try:
        good = await app.enqueue(record, f"behind {case}")
        unsuccessful = await drain(app, raise_on_failure=False)
        assert ran[-1:] == [f"behind {case}"]
        assert (await app.store.get(good)).state is JobState.SUCCEEDED
        job = await app.store.get(bad)
        _assert_failed_for_good(job, url, case)
        assert unsuccessful == []  # a corrupt row is failed by the store: it never ran
    finally:
        await app.aclose()


@pytest.fixture(params=_REFUSED)
def refused(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    make_url, case = request.param
    url: str = make_url(tmp_path)
    request.addfinalizer(lambda: drop_store_data(url))
    return url, case


async def test_the_schema_refuses_what_it_cannot_hold(refused: tuple[str, str]) -> None:
    """PostgreSQL cannot hold options that are not JSON (jsonb) or a state no task has (a
    CHECK constraint): those cases cannot happen there."""
    import psycopg

    url, case = refused
    with pytest.raises(
        psycopg.errors.DataError if "json" in case else psycopg.errors.IntegrityError
    ):
        await write_corrupt(url, case)
