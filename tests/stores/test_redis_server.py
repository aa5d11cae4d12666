"""Redis store: what the conformance suite cannot see about server settings, script
reloading, connection errors, the server clock, event loops and waiting."""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import socketserver
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import NoPermissionError

from afterward.errors import SchemaTooNew, StoreError
from afterward.jobs import JobState
from afterward.stores import Store, store_from_url
from afterward.stores.redis.target import durability_warnings

from ._helpers import LEASE, Clock, acquire_one, complete, enqueue_one, new_job
from ._redis import prefix_of, sync_client

pytestmark = pytest.mark.redis

BOUND = 10.0
"""A generous bound for "promptly": only a hang fails, never a slow machine."""


# -- the server ------------------------------------------------------------------------


async def test_open_warns_about_durability_settings(
    rs_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the test server's persistence settings
    raw = sync_client()
    config = {**raw.config_get("appendonly"), **raw.config_get("appendfsync")}
    raw.close()
    # When a store opens
    caplog.set_level(logging.WARNING, logger="afterward.store")
    store = store_from_url(rs_url)
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
    rs_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a managed server that refuses CONFIG GET
    async def refused(self: AsyncRedis, *args: Any, **kwargs: Any) -> Any:
        raise NoPermissionError("this user has no permissions to run the 'config' command")

    monkeypatch.setattr(AsyncRedis, "config_get", refused)
    caplog.set_level(logging.WARNING, logger="afterward.store")
    # When a store opens, Then it works and warns that it could not check
    store = store_from_url(rs_url)
    await store.open()
    await store.close()
    assert any("could not check" in r.getMessage() for r in caplog.records)


async def test_scripts_survive_script_flush(rs: Store, clock: Clock) -> None:
    # Given a store whose scripts are loaded, and a queued task
    job_id = await enqueue_one(rs, clock)
    # When the server forgets every script
    raw = sync_client()
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
    raw = sync_client()
    raw.script_flush()
    raw.close()
    # When the worker reports the first and takes the next in one pipelined call
    done, taken = await rs.complete_and_acquire(
        "w1", [(first, job.attempts)], now=clock(), lease=30, limit=1
    )
    # Then each script is sent again once, in order, and both parts happened
    assert done == {first}
    assert [j.id for j in taken] == [second]


async def test_a_newer_key_layout_is_refused(rs_url: str) -> None:
    # Given keys written by a newer afterward
    raw = sync_client()
    raw.set(f"{prefix_of(rs_url)}:schema", 99)
    raw.close()
    # When a store opens them, Then it refuses
    store = store_from_url(rs_url)
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


async def test_a_lost_connection_raises_store_error(rs_url: str, clock: Clock) -> None:
    # Given a store that reaches the server through a proxy
    parts = urlsplit(rs_url)
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


def test_one_store_serves_many_event_loops(rs_url: str, clock: Clock) -> None:
    # Given a store opened on one event loop
    store = store_from_url(rs_url)
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
    rs: Store, rs_url: str, clock: Clock
) -> None:
    # Given a worker that found nothing, and a task enqueued elsewhere before it waits
    producer = store_from_url(rs_url)
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


async def test_close_ends_a_wait(rs_url: str) -> None:
    # Given a worker waiting a minute for work
    store = store_from_url(rs_url)
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
