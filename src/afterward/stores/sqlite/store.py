"""The SQLite store: one file, WAL, `synchronous=FULL`; the embedded default.

Every operation is one ``BEGIN IMMEDIATE`` transaction on the store's connection
(`connection`), which SQLite serializes across processes: claims are atomic however
many processes share the file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ...errors import TaskNotFound
from ...jobs import Failure, Job, JobState, NewJob, check_new_jobs, check_transition, decide_lost
from ..base import Counts, JobFilter
from ..rows import (
    CorruptRow,
    Row,
    UnreadableText,
    attempt_from_row,
    new_job_row,
    options_texts,
    readable_job,
    split_rows,
    state_or_failed,
)
from ..sql_files import load_queries
from .connection import SQLiteConnection, lenient_text, path_from_url

__all__ = ["SQLiteStore"]

log = logging.getLogger("afterward.store")

T = TypeVar("T")

_QUERIES = load_queries("afterward.stores.sqlite")
_WAKE_POLL_MIN = 0.001
_WAKE_POLL_MAX = 0.01
_WAKE_FAST_FOR = 0.1
"""While idle, look for commits (any process's) every 1 ms for the first 100 ms after the
last change seen, then slow by a quarter per empty look to every 10 ms: a look is one
in-memory `PRAGMA data_version`, a few microseconds. Work tends to come in bursts: a
worker that just saw some sees the next within a millisecond."""


class SQLiteStore:
    """Tasks in a SQLite file. `synchronous` is ``"FULL"`` (survives power loss) by default."""

    def __init__(self, url: str, *, synchronous: str = "FULL") -> None:
        self.url = url
        self.path = path_from_url(url)
        self._db = SQLiteConnection(self.path, synchronous=synchronous)
        self._seen = -1
        """The file's data version when this store last looked for due tasks."""
        self._seen_change_at = 0.0
        """When (monotonic) `wait_for_work` last saw the data version move."""

    # -- lifecycle --------------------------------------------------------------------

    async def open(self, *, create: bool = True) -> None:
        await self._db.open(create=create)

    async def close(self) -> None:
        await self._db.close()

    async def now(self) -> float:
        """This machine's clock: every process sharing the file runs on it."""
        return time.time()

    # -- producing --------------------------------------------------------------------

    async def enqueue(
        self,
        jobs: Sequence[NewJob],
        *,
        now: float,
        reserve_for: str | None = None,
        lease: float = 0.0,
    ) -> list[str]:
        check_new_jobs(jobs)

        def write(conn: sqlite3.Connection) -> list[str]:
            texts = options_texts(jobs)
            return [
                self._insert(conn, job, text, now, reserve_for, now + lease)
                for job, text in zip(jobs, texts, strict=True)
            ]

        return await self._db.write(write)

    def _insert(
        self,
        conn: sqlite3.Connection,
        job: NewJob,
        options: str,
        now: float,
        reserve_for: str | None,
        expires: float,
    ) -> str:
        if job.unique_key is not None:
            existing = conn.execute(
                _QUERIES["find_unfinished_by_unique_key"], {"unique_key": job.unique_key}
            ).fetchone()
            if existing is not None:
                return str(existing["id"])
        conn.execute(
            _QUERIES["insert_job"],
            {
                **new_job_row(job, now, options),
                "lease_owner": reserve_for,
                "lease_expires_at": expires if reserve_for else None,
                "now": now,
            },
        )
        if job.prev_id is not None:
            conn.execute(_QUERIES["link_next"], {"id": job.prev_id, "next_id": job.id})
        return job.id

    # -- consuming --------------------------------------------------------------------

    async def acquire(
        self,
        worker: str,
        *,
        now: float,
        lease: float,
        limit: int,
        queues: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[Job]:
        # Not fsynced on its own: after a power loss the task is simply due again.
        try:
            take = self._taking(worker, now, lease, limit, queues, ids)
            return await self._db.write(take, durable=False)
        except _NotUtf8:  # rolled back; taken again reading such text leniently
            careful = self._taking(worker, now, lease, limit, queues, ids, careful=True)
            return await self._db.write(careful, durable=False)

    async def complete_and_acquire(
        self,
        worker: str,
        attempts: Sequence[tuple[str, int]],
        *,
        now: float,
        lease: float,
        limit: int,
        queues: Sequence[str] | None = None,
        ids: Sequence[str] | None = None,
    ) -> tuple[set[str], list[Job]]:
        """One write: the completions, then the acquire (which sees what they released)."""
        complete = self._completing(worker, attempts, now)
        if limit <= 0:
            return (await self._db.write(complete) if attempts else set()), []
        for careful in (False, True):
            take = self._taking(worker, now, lease, limit, queues, ids, careful=careful)

            def write(conn: sqlite3.Connection) -> tuple[set[str], list[Job]]:
                return complete(conn), take(conn)  # noqa: B023 (called before the next turn)

            try:
                return await self._db.write(write, durable=bool(attempts))
            except _NotUtf8:  # rolled back, completions too: both again, carefully
                continue
        raise AssertionError("unreachable: a careful take never raises _NotUtf8")

    def _taking(
        self,
        worker: str,
        now: float,
        lease: float,
        limit: int,
        queues: Sequence[str] | None,
        ids: Sequence[str] | None,
        *,
        careful: bool = False,
    ) -> Callable[[sqlite3.Connection], list[Job]]:
        """The acquire, as a write. Rows are parsed one by one: a row that cannot be read
        is failed for good (`_spoil`) and the batch filled from the rows behind it. Text
        that is not UTF-8 fails the statement itself: the write then raises `_NotUtf8`
        (its transaction rolls back) unless `careful`, which reads such text leniently."""
        params: dict[str, Any] = {
            "worker": worker,
            "now": now,
            "expires": now + lease,
            "limit": limit,
        }
        if ids is not None:
            query = _QUERIES["acquire_ids"]
            params["ids"] = json.dumps(list(ids))
        else:
            query = _QUERIES["acquire_due"]
            params.update(any_queue=queues is None, queues=json.dumps(list(queues or ())))

        def write(conn: sqlite3.Connection) -> list[Job]:
            self._seen = self._db.data_version()
            jobs: list[Job] = []
            while True:
                rows = _take(conn, query, params, careful=careful)
                conn.executemany(
                    _QUERIES["open_attempt"],
                    [
                        {"job_id": r["id"], "number": r["attempts"], "worker": worker, "now": now}
                        for r in rows
                    ],
                )
                taken, corrupt = split_rows(rows)
                jobs += taken
                if not corrupt:
                    break
                _spoil(conn, corrupt, now, "failed", owner=worker)
                params["limit"] = limit - len(jobs)
                if params["limit"] <= 0:
                    break
            jobs.sort(key=lambda j: (-j.priority, j.run_at, j.id))
            return jobs

        return write

    async def extend_leases(
        self, worker: str, ids: Sequence[str], *, now: float, lease: float
    ) -> set[str]:
        params = {"worker": worker, "ids": json.dumps(list(ids)), "now": now}
        params["expires"] = now + lease

        def write(conn: sqlite3.Connection) -> set[str]:
            return {r["id"] for r in conn.execute(_QUERIES["extend_leases"], params)}

        return await self._db.write(write, durable=False)

    @staticmethod
    def _completing(
        worker: str, attempts: Sequence[tuple[str, int]], now: float
    ) -> Callable[[sqlite3.Connection], set[str]]:
        def write(conn: sqlite3.Connection) -> set[str]:
            done = set()
            for job_id, attempt in attempts:
                params = {"id": job_id, "worker": worker, "attempt": attempt, "now": now}
                row = conn.execute(_QUERIES["complete"], params).fetchone()
                if row is None:
                    continue
                _close_attempt(conn, job_id, attempt, now, "succeeded")
                if row["next_id"] is not None:
                    conn.execute(_QUERIES["release_next"], {"id": row["next_id"], "now": now})
                done.add(job_id)
            return done

        return write

    async def fail(
        self, job_id: str, worker: str, attempt: int, failure: Failure, *, now: float
    ) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            return self._fail(conn, job_id, worker, attempt, failure, now, live=True)

        return await self._db.write(write)

    def _fail(
        self,
        conn: sqlite3.Connection,
        job_id: str,
        worker: str,
        attempt: int,
        failure: Failure,
        now: float,
        *,
        live: bool,
        outcome: str = "failed",
    ) -> bool:
        params = {
            "id": job_id,
            "worker": worker,
            "attempt": attempt,
            "now": now,
            "retry_at": failure.retry_at,
            "error": failure.error,
            "live": live,
            "outcome": outcome,
        }
        if conn.execute(_QUERIES["fail"], params).fetchone() is None:
            return False
        _close_attempt(conn, job_id, attempt, now, outcome, failure.error, failure.traceback)
        return True

    async def release(self, worker: str, ids: Sequence[str], *, now: float) -> int:
        params = {"worker": worker, "ids": json.dumps(list(ids)), "now": now}

        def write(conn: sqlite3.Connection) -> int:
            rows = conn.execute(_QUERIES["release_running"], params).fetchall()
            for r in rows:
                _close_attempt(conn, r["id"], r["attempts"], now, "released")
            conn.execute(_QUERIES["drop_reservations"], params)
            return len(rows)

        return await self._db.write(write)

    async def lease_holders(self) -> list[str]:
        def read(conn: sqlite3.Connection) -> list[str]:
            return [r["lease_owner"] for r in conn.execute(_QUERIES["lease_holders"])]

        return await self._db.call(read)

    async def recover(self, *, now: float, dead_workers: Sequence[str] = ()) -> int:
        params = {"now": now, "dead": json.dumps(list(dead_workers))}

        def write(conn: sqlite3.Connection) -> int:
            conn.execute(_QUERIES["drop_dead_reservations"], params)
            with lenient_text(conn):
                rows = conn.execute(_QUERIES["lost_leases"], params).fetchall()
            jobs, corrupt = split_rows(rows)
            taken = _spoil(conn, corrupt, now, "lost")
            for job in jobs:
                failure = decide_lost(job, now, dead=job.lease_owner in dead_workers)
                assert job.lease_owner is not None
                taken += self._fail(
                    conn,
                    job.id,
                    job.lease_owner,
                    job.attempts,
                    failure,
                    now,
                    live=False,
                    outcome="lost",
                )
            return taken

        return await self._db.write(write)

    # -- administration ---------------------------------------------------------------

    async def cancel(self, job_id: str, *, now: float) -> list[str]:
        def write(conn: sqlite3.Connection) -> list[str]:
            job = self._get(conn, job_id)
            check_transition(job.state, "cancel", job_id)
            cancelled = []
            current: str | None = job_id
            from_state = job.state
            while current is not None:
                row = conn.execute(
                    _QUERIES["set_state"],
                    {
                        "id": current,
                        "from_state": from_state.value,
                        "to_state": JobState.CANCELLED.value,
                        "finished_at": now,
                    },
                ).fetchone()
                if row is None:
                    break
                cancelled.append(current)
                current, from_state = row["next_id"], JobState.WAITING
            return cancelled

        return await self._db.write(write)

    async def retry(self, job_id: str, *, now: float) -> None:
        def write(conn: sqlite3.Connection) -> None:
            job = self._get(conn, job_id)
            check_transition(job.state, "retry", job_id)
            prev_row = conn.execute(_QUERIES["get_job"], {"id": job.prev_id}).fetchone()
            # No predecessor, or a purged one (it had finished long ago): runnable.
            runnable = prev_row is None or prev_row["state"] == JobState.SUCCEEDED
            budget = int(job.options.get("max_attempts", job.max_attempts))
            conn.execute(
                _QUERIES["requeue"],
                {
                    "id": job_id,
                    "now": now,
                    "budget": budget,
                    "to_state": (JobState.QUEUED if runnable else JobState.WAITING).value,
                },
            )
            current = job.next_id
            while current is not None:  # the chain behind it waits again
                row = conn.execute(
                    _QUERIES["set_state"],
                    {
                        "id": current,
                        "from_state": JobState.CANCELLED.value,
                        "to_state": JobState.WAITING.value,
                        "finished_at": None,
                    },
                ).fetchone()
                current = None if row is None else row["next_id"]

        await self._db.write(write)

    def _get(self, conn: sqlite3.Connection, job_id: str) -> Job:
        """The task as `readable_job` shows it (a row that cannot be read, too)."""
        with lenient_text(conn):
            row = conn.execute(_QUERIES["get_job"], {"id": job_id}).fetchone()
            if row is None:
                raise TaskNotFound(job_id)
            history = conn.execute(_QUERIES["get_attempts"], {"id": job_id}).fetchall()
        return readable_job(row, (attempt_from_row(a) for a in history))

    async def get(self, job_id: str) -> Job:
        return await self._db.call(lambda conn: self._get(conn, job_id))

    async def list(self, where: JobFilter, *, limit: int = 50, offset: int = 0) -> list[Job]:
        params = {
            "any_state": where.states is None,
            "states": json.dumps([JobState(s).value for s in where.states or ()]),
            "queue": where.queue,
            "function": where.function,
            "chain_id": where.chain_id,
            "id_prefix": where.id_prefix,
            "limit": limit,
            "offset": offset,
        }

        def read(conn: sqlite3.Connection) -> list[Job]:
            with lenient_text(conn):
                rows = conn.execute(_QUERIES["list_jobs"], params).fetchall()
            return [readable_job(r) for r in rows]

        return await self._db.call(read)

    async def counts(self) -> Counts:
        def read(conn: sqlite3.Connection) -> Counts:
            with lenient_text(conn):
                rows = conn.execute(_QUERIES["counts"]).fetchall()
            counts: dict[tuple[str, JobState], int] = {}
            for r in rows:  # a state no task has counts as failed (see `readable_job`)
                key = (str(r["queue"]), state_or_failed(r["state"]))
                counts[key] = counts.get(key, 0) + r["n"]
            return counts

        return await self._db.call(read)

    async def purge(self, *, states: Sequence[JobState], finished_before: float) -> int:
        params = {"states": json.dumps([JobState(s).value for s in states])}
        params["before"] = finished_before  # type: ignore[assignment]

        def write(conn: sqlite3.Connection) -> int:
            conn.execute(_QUERIES["purge_attempts"], params)
            return conn.execute(_QUERIES["purge_jobs"], params).rowcount

        return await self._db.write(write)

    # -- waking -----------------------------------------------------------------------

    async def wait_for_work(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        interval = _WAKE_POLL_MIN
        while True:
            seen = self._db.data_version()
            now = time.monotonic()
            if seen != self._seen:
                self._seen, self._seen_change_at = seen, now
                return
            left = deadline - now
            if left <= 0:
                return
            await asyncio.sleep(min(interval, left))
            if now - self._seen_change_at > _WAKE_FAST_FOR:
                interval = min(interval * 1.25, _WAKE_POLL_MAX)


class _NotUtf8(Exception):
    """An acquire read text that is not UTF-8: its write is undone, to be tried carefully."""


def _take(
    conn: sqlite3.Connection, query: str, params: dict[str, Any], *, careful: bool
) -> list[Row]:
    """The acquire statement's rows; see `SQLiteStore._taking`."""
    if careful:
        with lenient_text(conn):
            return conn.execute(query, params).fetchall()
    try:
        return conn.execute(query, params).fetchall()
    except sqlite3.OperationalError as exc:
        # The driver's decoding (it sets no SQLite error code): the statement's changes
        # stand until the write's savepoint is rolled back. Another error is raised again
        # by the careful try.
        raise _NotUtf8 from exc


def _key(value: Any) -> Any:
    """A stored text as a parameter that finds its row: the bytes of `UnreadableText`."""
    return value.raw if isinstance(value, UnreadableText) else value


def _spoil(
    conn: sqlite3.Connection,
    corrupt: list[tuple[Row, CorruptRow]],
    now: float,
    outcome: str,
    *,
    owner: str | None = None,
) -> int:
    """Fail for good the running rows that cannot be read, held by `owner` (by default
    their own holder); their attempt ends as `outcome`. Returns how many were failed."""
    failed = 0
    for row, error in corrupt:
        params = {
            "id": _key(row["id"]),
            "owner": _key(row["lease_owner"]) if owner is None else owner,
            "now": now,
            "error": error.reason,
            "outcome": outcome,
        }
        if conn.execute(_QUERIES["spoil_job"], params).rowcount:
            failed += 1
            attempt = {"shown": row["id"], "number": row["attempts"]}
            conn.execute(_QUERIES["spoil_attempt"], params | attempt)
        error.log_failed(row["id"])
    return failed


def _close_attempt(
    conn: sqlite3.Connection,
    job_id: str,
    number: int,
    now: float,
    outcome: str,
    error: str | None = None,
    traceback: str | None = None,
) -> None:
    conn.execute(
        _QUERIES["close_attempt"],
        {
            "job_id": job_id,
            "number": number,
            "now": now,
            "outcome": outcome,
            "error": error,
            "traceback": traceback,
        },
    )
