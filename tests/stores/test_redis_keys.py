"""Redis store: what the conformance suite cannot see about URLs, prefixes, text
round trips and key hygiene."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from servers import REDIS_URL, drop_store_data, redis_url, require_server

from afterward.errors import TaskNotFound
from afterward.jobs import JobState
from afterward.stores import JobFilter, Store, store_from_url
from afterward.stores.redis.target import parse_redis_url

from ._helpers import LEASE, Clock, acquire_one, complete, enqueue_one, failure, new_chain, new_job
from ._redis import prefix_of, sync_client

pytestmark = pytest.mark.redis


# -- URLs and prefixes -------------------------------------------------------------------


def test_url_options() -> None:
    # Given URLs with and without a prefix, a password and a valkey scheme
    plain = parse_redis_url("redis://127.0.0.1:6379/0")
    secret = parse_redis_url("valkeys://user:hunter2@cache:6380/3?prefix=jobs&ssl_cert_reqs=none")
    # Then the prefix defaults to "afterward" and is never handed to redis-py
    assert (plain.prefix, plain.client_url) == ("afterward", "redis://127.0.0.1:6379/0")
    assert secret.prefix == "jobs"
    assert secret.client_url == "rediss://user:hunter2@cache:6380/3?ssl_cert_reqs=none"
    # And the URL shown in messages has no password
    assert "hunter2" not in secret.display
    assert secret.display == "valkeys://user@cache:6380/3?prefix=jobs&ssl_cert_reqs=none"


async def test_prefixes_isolate_stores(rs_url: str, tmp_path: Path, clock: Clock) -> None:
    # Given two stores on the same server under different prefixes
    other_url = redis_url(tmp_path)
    mine, theirs = store_from_url(rs_url), store_from_url(other_url)
    await mine.open()
    await theirs.open()
    try:
        # When one enqueues tasks, one of them reserved and one unique
        (job_id,) = await mine.enqueue([new_job(unique_key="k")], now=clock())
        await mine.enqueue([new_job()], now=clock(), reserve_for="w1", lease=LEASE)
        # Then the other sees none of them
        assert await theirs.counts() == {}
        assert await theirs.list(JobFilter()) == []
        assert await theirs.lease_holders() == []
        assert await theirs.acquire("w2", now=clock(), lease=LEASE, limit=10) == []
        with pytest.raises(TaskNotFound):
            await theirs.get(job_id)
        # And its unique keys are its own
        other = new_job(unique_key="k")
        assert await theirs.enqueue([other], now=clock()) == [other.id]
        assert sum((await mine.counts()).values()) == 2
    finally:
        await mine.close()
        await theirs.close()
        drop_store_data(other_url)


async def test_valkey_scheme_is_redis(rs_url: str, clock: Clock) -> None:
    # Given the test server named with the valkey:// scheme
    store = store_from_url("valkey://" + rs_url.partition("://")[2])
    await store.open()
    try:
        # When a task goes through it, Then it behaves as a redis:// store
        job_id = await enqueue_one(store, clock)
        assert (await acquire_one(store, clock)).id == job_id
    finally:
        await store.close()


async def test_commands_with_spaces_and_long_text_round_trip(rs_url: str, clock: Clock) -> None:
    # Given a store (its connections pack commands as redis-py does, with hiredis)
    store = store_from_url(rs_url)
    await store.open()
    try:
        # When tasks with spaces, non-ASCII text and long payloads go through it
        jobs = [new_job(payload='{"args":["a b", "é✓"],"kwargs":{}}' + " " * 9000)]
        ids = await store.enqueue([*jobs, new_job(queue="two words")], now=clock())
        # Then they are stored as given
        assert (await store.get(ids[0])).payload == jobs[0].payload
        assert (await store.get(ids[1])).queue == "two words"
    finally:
        await store.close()


async def test_tasks_travel_to_the_hash_as_given(rs_url: str, rs: Store, clock: Clock) -> None:
    # Given tasks whose text holds what a JSON batch escapes or must carry unchanged:
    # quotes, backslashes, NUL and control characters, non-ASCII, long text and spaces,
    # in every field, the id too
    printable = 'q"\\ é✓😀 ["x"] {}'  # a queue's or a function's name
    odd = printable + "\x00\x01\x1f\x7f\n\t"
    first = new_job(payload=f'{{"args":["a b", {odd!r}],"kwargs":{{}}}}' + " " * 9000)
    chain = new_chain(2, queue="two words " + printable, function="app.tasks." + printable)
    jobs = [
        first,
        new_job(priority=-2_147_483_647, run_at=clock() - 0.1234567890123, unique_key=""),
        new_job(id="task " + printable, unique_key=odd, options={"max_attempts": 3, "note": odd}),
        *chain,
    ]
    # When they are enqueued as one batch
    ids = await rs.enqueue(jobs, now=clock())
    # Then each reads back as given
    assert ids == [job.id for job in jobs]
    for job in jobs:
        stored = await rs.get(job.id)
        got = (stored.function, stored.payload, stored.queue, stored.priority, stored.options)
        assert got == (job.function, job.payload, job.queue, job.priority, dict(job.options))
        assert (stored.unique_key, stored.chain_id, stored.prev_id) == (
            job.unique_key,
            job.chain_id,
            job.prev_id,
        )
    # And the hashes hold the strings older code wrote: times exact, absent fields absent
    raw = sync_client()
    try:
        fields = raw.hgetall(f"{prefix_of(rs_url)}:job:{jobs[1].id}")
    finally:
        raw.close()
    assert jobs[1].run_at is not None
    assert fields["run_at"] == repr(jobs[1].run_at)
    assert (fields["priority"], fields["unique_key"]) == ("-2147483647", "")
    assert not {"chain_id", "prev_id", "next_id"} & fields.keys()
    # And they complete by their ids and attempts
    taken = await rs.acquire("w1", now=clock(), lease=LEASE, limit=len(jobs))
    attempts = [(job.id, job.attempts) for job in taken]
    done, _ = await rs.complete_and_acquire("w1", attempts, now=clock(), lease=LEASE, limit=0)
    assert done == {job.id for job in taken} == {job.id for job in jobs[:4]}


async def test_text_with_surrogates_is_refused(rs: Store, clock: Clock) -> None:
    # Given a task whose payload has a lone surrogate (not text UTF-8 can carry)
    job = new_job(payload='{"args": ["\udc80"], "kwargs": {}}')
    # When it is enqueued, Then it is refused and nothing is stored
    with pytest.raises(UnicodeEncodeError):
        await rs.enqueue([job, new_job()], now=clock())
    assert await rs.counts() == {}


async def test_no_key_is_written_outside_the_prefix(tmp_path: Path, clock: Clock) -> None:
    # Given a store on a database of its own (index 9 of the test server)
    require_server("redis")
    parts = urlsplit(REDIS_URL)
    base = urlunsplit((parts.scheme, parts.netloc, "/9", "", ""))
    prefix = f"aw_test_{uuid.uuid4().hex[:10]}"
    raw = sync_client(base)
    before = set(raw.keys("*"))
    store = store_from_url(f"{base}?prefix={prefix}")
    await store.open()
    try:
        # When every operation runs
        chain = await store.enqueue(new_chain(2), now=clock(), reserve_for="w1", lease=5)
        await store.extend_leases("w1", chain, now=clock(), lease=5)
        await store.release("w1", chain, now=clock())
        await enqueue_one(store, clock, unique_key="u")
        await enqueue_one(store, clock, run_at=clock() + 60)
        job = await acquire_one(store, clock, "w1", lease=10)
        await complete(store, job.id, "w1", job.attempts, now=clock())
        job = await acquire_one(store, clock, "w2", lease=10)
        await store.fail(job.id, "w2", job.attempts, failure(), now=clock())
        await acquire_one(store, clock, "w3", lease=10)
        await store.lease_holders()
        clock.advance(11)
        await store.recover(now=clock(), dead_workers=["w9"])
        await store.retry(job.id, now=clock())
        await store.cancel(job.id, now=clock())
        await store.wait_for_work(0.01)
        await store.list(JobFilter(function="work"))
        await store.get(job.id)
        await store.counts()
        await store.now()
        await store.purge(states=list(JobState), finished_before=clock() + 1)
        # Then every key it created starts with its prefix
        written = set(raw.keys("*")) - before
        assert written
        assert {
            k for k in written if not (isinstance(k, str) and k.startswith(f"{prefix}:"))
        } == set()
    finally:
        await store.close()
        keys = list(raw.scan_iter(match=f"{prefix}:*"))
        if keys:
            raw.delete(*keys)
        raw.close()
