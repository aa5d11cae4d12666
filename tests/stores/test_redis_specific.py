"""Redis store: what the conformance suite cannot see — prefixes, URLs, server settings,
script reloading, connection errors, the server clock, event loops and key hygiene."""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import NoPermissionError
from servers import REDIS_URL, drop_store_data, redis_url, require_server

from afterward.errors import SchemaTooNew, StoreError, TaskNotFound
from afterward.jobs import JobState
from afterward.stores import JobFilter, Store, store_from_url
from afterward.stores.redis.target import durability_warnings, parse_redis_url

from ._helpers import LEASE, Clock, acquire_one, complete, enqueue_one, failure, new_chain, new_job

pytestmark = pytest.mark.redis

BOUND = 10.0
"""A generous bound for "promptly": only a hang fails, never a slow machine."""


def _prefix(url: str) -> str:
    return parse_redis_url(url).prefix


def _sync_client(url: str = REDIS_URL) -> redis.Redis:
    return redis.Redis.from_url(url.partition("?")[0], decode_responses=True)


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    made = redis_url(tmp_path)
    yield made
    drop_store_data(made)


@pytest.fixture
async def rs(url: str) -> AsyncIterator[Store]:
    store = store_from_url(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


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


async def test_prefixes_isolate_stores(url: str, tmp_path: Path, clock: Clock) -> None:
    # Given two stores on the same server under different prefixes
    other_url = redis_url(tmp_path)
    mine, theirs = store_from_url(url), store_from_url(other_url)
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


async def test_valkey_scheme_is_redis(url: str, clock: Clock) -> None:
    # Given the test server named with the valkey:// scheme
    store = store_from_url("valkey://" + url.partition("://")[2])
    await store.open()
    try:
        # When a task goes through it, Then it behaves as a redis:// store
        job_id = await enqueue_one(store, clock)
        assert (await acquire_one(store, clock)).id == job_id
    finally:
        await store.close()


async def test_commands_with_spaces_and_long_text_round_trip(url: str, clock: Clock) -> None:
    # Given a store (its connections pack commands as redis-py does, with hiredis)
    store = store_from_url(url)
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


async def test_tasks_travel_to_the_hash_as_given(url: str, rs: Store, clock: Clock) -> None:
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
    raw = _sync_client()
    try:
        fields = raw.hgetall(f"{_prefix(url)}:job:{jobs[1].id}")
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
    raw = _sync_client(base)
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


# -- the server ------------------------------------------------------------------------


async def test_open_warns_about_durability_settings(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the test server's persistence settings
    raw = _sync_client()
    config = {**raw.config_get("appendonly"), **raw.config_get("appendfsync")}
    raw.close()
    # When a store opens
    caplog.set_level(logging.WARNING, logger="afterward.store")
    store = store_from_url(url)
    await store.open()
    await store.close()
    # Then it warns that acknowledged tasks may be lost, unless every write is fsynced
    messages = [r.getMessage() for r in caplog.records if r.name == "afterward.store"]
    lossy = [m for m in messages if "may be lost on a Redis crash" in m]
    if config["appendonly"] == "yes" and config["appendfsync"] == "always":
        assert lossy == []
    else:
        assert len(lossy) == 1
        assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_durability_warnings_name_each_risky_setting() -> None:
    url = "redis://h/0"
    safe = {"maxmemory-policy": "noeviction", "appendonly": "yes", "appendfsync": "always"}
    assert durability_warnings(url, safe) == []
    (evicting,) = durability_warnings(url, {**safe, "maxmemory-policy": "allkeys-lru"})
    assert "allkeys-lru" in evicting and "noeviction" in evicting
    (everysec,) = durability_warnings(url, {**safe, "appendfsync": "everysec"})
    assert "everysec" in everysec and "~1 s" in everysec
    (aof_off,) = durability_warnings(url, {**safe, "appendonly": "no"})
    assert "AOF is off" in aof_off and "last snapshot" in aof_off
    (unknown,) = durability_warnings(url, None)
    assert "could not check" in unknown


async def test_refused_config_get_is_warned(
    url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a managed server that refuses CONFIG GET
    async def refused(self: AsyncRedis, *args: Any, **kwargs: Any) -> Any:
        raise NoPermissionError("this user has no permissions to run the 'config' command")

    monkeypatch.setattr(AsyncRedis, "config_get", refused)
    caplog.set_level(logging.WARNING, logger="afterward.store")
    # When a store opens, Then it works and warns that it could not check
    store = store_from_url(url)
    await store.open()
    await store.close()
    assert any("could not check" in r.getMessage() for r in caplog.records)


async def test_scripts_survive_script_flush(rs: Store, clock: Clock) -> None:
    # Given a store whose scripts are loaded, and a queued task
    job_id = await enqueue_one(rs, clock)
    # When the server forgets every script
    raw = _sync_client()
    raw.script_flush()
    raw.close()
    # Then the store sends them again and carries on
    job = await acquire_one(rs, clock)
    assert job.id == job_id
    assert await complete(rs, job_id, "w1", job.attempts, now=clock())


async def test_combined_scripts_survive_script_flush(rs: Store, clock: Clock) -> None:
    # Given a running task and a queued one, and a server that then forgets every script
    first = await enqueue_one(rs, clock)
    job = await acquire_one(rs, clock)
    second = await enqueue_one(rs, clock)
    raw = _sync_client()
    raw.script_flush()
    raw.close()
    # When the worker reports the first and takes the next in one pipelined call
    done, taken = await rs.complete_and_acquire(
        "w1", [(first, job.attempts)], now=clock(), lease=30, limit=1
    )
    # Then each script is sent again once, in order, and both parts happened
    assert done == {first}
    assert [j.id for j in taken] == [second]


async def test_a_newer_key_layout_is_refused(url: str) -> None:
    # Given keys written by a newer afterward
    raw = _sync_client()
    raw.set(f"{_prefix(url)}:schema", 99)
    raw.close()
    # When a store opens them, Then it refuses
    store = store_from_url(url)
    with pytest.raises(SchemaTooNew):
        await store.open()
    await store.close()


async def test_now_is_the_server_clock(rs: Store) -> None:
    # The test server runs on this machine: its clock agrees with ours
    assert abs(await rs.now() - time.time()) < 2.0


# -- connection errors -----------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_server_raises_store_error() -> None:
    # Given a URL where nothing listens
    store = store_from_url(f"redis://127.0.0.1:{_closed_port()}/0?prefix=nothing")
    # When the store opens, or is used unopened, Then StoreError is raised
    with pytest.raises(StoreError, match=r"127\.0\.0\.1"):
        await store.open()
    with pytest.raises(StoreError, match="not open"):
        await store.counts()
    await store.close()


class _Proxy(socketserver.ThreadingTCPServer):
    """A TCP proxy to the test server that the test can cut off."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.sockets: list[socket.socket] = []
        super().__init__(("127.0.0.1", 0), _Pipe)

    def cut(self) -> None:
        self.shutdown()
        self.server_close()
        for sock in self.sockets:
            sock.close()


class _Pipe(socketserver.BaseRequestHandler):
    server: _Proxy

    def handle(self) -> None:
        upstream = socket.create_connection(self.server.target)
        self.server.sockets += [upstream, self.request]
        ends = [self.request, upstream]
        try:
            while True:
                readable, _, _ = select.select(ends, [], [], 0.1)
                for end in readable:
                    data = end.recv(65536)
                    if not data:
                        return
                    (upstream if end is self.request else self.request).sendall(data)
        except OSError:
            return
        finally:
            upstream.close()


async def test_a_lost_connection_raises_store_error(url: str, clock: Clock) -> None:
    # Given a store that reaches the server through a proxy
    parts = urlsplit(url)
    proxy = _Proxy((parts.hostname or "127.0.0.1", parts.port or 6379))
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    proxied = urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.server_address[1]}"))
    store = store_from_url(proxied)
    await store.open()
    try:
        await enqueue_one(store, clock)
        # When the connection to the server is lost
        proxy.cut()
        # Then operations raise StoreError
        with pytest.raises(StoreError):
            await store.counts()
        with pytest.raises(StoreError):
            await store.acquire("w1", now=clock(), lease=LEASE, limit=1)
    finally:
        await store.close()


# -- event loops, waiting and precision ------------------------------------------------


def test_one_store_serves_many_event_loops(url: str, clock: Clock) -> None:
    # Given a store opened on one event loop
    store = store_from_url(url)
    asyncio.run(store.open())
    try:
        # When other loops (as TestClient makes per request) and another thread use it
        job_id = asyncio.run(enqueue_one(store, clock))
        got: list[str] = []
        thread = threading.Thread(
            target=lambda: got.extend(j.id for j in asyncio.run(_take(store, clock)))
        )
        thread.start()
        thread.join(BOUND)
        # Then every call works
        assert got == [job_id]
        assert asyncio.run(store.get(job_id)).state is JobState.RUNNING
        # And it can be closed twice, opened again (twice) and used again
        asyncio.run(store.close())
        asyncio.run(store.close())
        asyncio.run(store.open())
        asyncio.run(store.open())
        assert asyncio.run(store.get(job_id)).lease_owner == "w1"
    finally:
        asyncio.run(store.close())


async def _take(store: Store, clock: Clock) -> list[Any]:
    return await store.acquire("w1", now=clock(), lease=LEASE, limit=10)


async def test_a_wake_up_between_acquire_and_wait_is_kept(
    rs: Store, url: str, clock: Clock
) -> None:
    # Given a worker that found nothing, and a task enqueued elsewhere before it waits
    producer = store_from_url(url)
    await producer.open()
    try:
        assert await rs.acquire("w1", now=clock(), lease=LEASE, limit=1) == []
        await producer.enqueue([new_job()], now=clock())
        # When it then waits a long time, Then the wait returns at once
        started = time.monotonic()
        await asyncio.wait_for(rs.wait_for_work(60), BOUND)
        assert time.monotonic() - started < BOUND
    finally:
        await producer.close()


async def test_close_ends_a_wait(url: str) -> None:
    # Given a worker waiting a minute for work
    store = store_from_url(url)
    await store.open()
    waiting: asyncio.Task[object] = asyncio.create_task(store.wait_for_work(60))
    await asyncio.sleep(0.05)
    # When the store is closed, Then the wait returns
    await asyncio.wait_for(store.close(), BOUND)
    assert await asyncio.wait_for(waiting, BOUND) is None


async def test_times_keep_every_digit(rs: Store, clock: Clock) -> None:
    # Given tasks due a microsecond apart, enqueued latest first
    base = clock() - 1 + 0.123456
    later, earlier = new_job(run_at=base + 1e-6), new_job(run_at=base)
    await rs.enqueue([later, earlier], now=clock())
    # Then their times read back exactly, and the earlier one is taken first
    assert (await rs.get(earlier.id)).run_at == base
    assert (await rs.get(later.id)).run_at == base + 1e-6
    assert [j.id for j in await rs.acquire("w1", now=clock(), lease=0.1, limit=2)] == [
        earlier.id,
        later.id,
    ]
    assert (await rs.get(earlier.id)).lease_expires_at == clock() + 0.1


async def test_a_cancelled_wait_leaves_the_store_usable(rs: Store, clock: Clock) -> None:
    # Given a wait cancelled halfway, as a worker's stop does
    waiting = asyncio.create_task(rs.wait_for_work(60))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    # When work arrives, Then the next wait sees it and the store answers as before
    job_id = await enqueue_one(rs, clock)
    await asyncio.wait_for(rs.wait_for_work(60), BOUND)
    assert (await acquire_one(rs, clock)).id == job_id
