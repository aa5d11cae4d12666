"""Floors for the lesson's ``/tasks`` endpoint: the least any durable version must do, written
by hand with nothing of afterward, for `bench.web` to set beside FastAPI's and afterward's.

- ``commit``: the bare endpoint plus one ``synchronous=FULL`` commit (WAL) of the request's two
  calls as rows, in the endpoint's own thread, before the response. Nothing runs the tasks:
  any implementation that keeps the README's promise (accepted tasks survive power loss)
  does at least this much work per request.
- ``durable``: FastAPI's own `BackgroundTasks` run the two tasks as FastAPI does, with the
  rows committed before the response (as ``commit``) and marked done, committed, by a third
  background task after them: the least work of a durable `BackgroundTasks` that also
  records outcomes, with no queue, lease or retry.

One connection and one writer thread per process; the file comes from ``AW_BENCH_FLOOR_DB``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Sequence

import fastapi
from fastapi import FastAPI

from .web_apps import send_email, write_audit

__all__ = ["Ledger", "commit", "durable"]


class Ledger:
    """Tasks as rows of one table, written in group commits: the writes that arrive while a
    commit is under way share the next transaction and its fsync (without that, each
    request's fsync costs more CPU than FastAPI's whole request).

    No thread of its own on the request's path: the first endpoint thread to find no commit
    under way leads, committing what waits (its own rows first) until nothing does, and
    wakes the threads whose rows it committed. A write from the event loop (`done`) rides
    with the next commit, or wakes a standby thread to lead when none is under way.
    """

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, function TEXT, "
            "payload TEXT, state TEXT)"
        )
        self._waiting: list[tuple[str, Sequence[tuple[str, ...]], Callable[[], object]]] = []
        self._mutex = threading.Lock()
        self._leading = False
        self._standby = threading.Semaphore(0)
        threading.Thread(target=self._stand_by, daemon=True).start()

    def add(self, calls: list[tuple[str, str]]) -> list[str]:
        """Commit one row per (function, payload); return their ids."""
        rows = [(uuid.uuid4().hex, f, p, "queued") for f, p in calls]
        committed = threading.Lock()
        committed.acquire()
        if self._queue("INSERT INTO tasks VALUES (?, ?, ?, ?)", rows, committed.release):
            self._lead()
        else:
            committed.acquire()  # a leading thread releases it once the rows are committed
        return [row[0] for row in rows]

    async def done(self, ids: list[str]) -> None:
        """Commit the tasks `ids` as done (from the event loop)."""
        loop = asyncio.get_running_loop()
        committed = loop.create_future()
        rows = [(i,) for i in ids]

        def wake() -> None:
            loop.call_soon_threadsafe(committed.set_result, None)

        if self._queue("UPDATE tasks SET state = 'done' WHERE id = ?", rows, wake):
            self._standby.release()
        await committed

    def _queue(self, sql: str, rows: Sequence[tuple[str, ...]], wake: Callable[[], object]) -> bool:
        """Queue a write; True if the caller must lead the commit (none is under way)."""
        with self._mutex:
            self._waiting.append((sql, rows, wake))
            lead, self._leading = not self._leading, True
        return lead

    def _lead(self) -> None:
        while True:
            with self._mutex:
                group, self._waiting = self._waiting, []
                if not group:
                    self._leading = False
                    return
            self._conn.execute("BEGIN IMMEDIATE")
            for sql, rows, _ in group:
                self._conn.executemany(sql, rows)
            self._conn.execute("COMMIT")
            for _, _, wake in group:
                wake()

    def _stand_by(self) -> None:
        while True:
            self._standby.acquire()
            self._lead()


_ledger = Ledger(os.environ.get("AW_BENCH_FLOOR_DB", "floor.db"))


def _calls(title: str) -> list[tuple[str, str]]:
    return [
        ("write_audit", json.dumps([f"created task {title!r}"])),
        ("send_email", json.dumps(["ada@example.com"])),
    ]


commit = FastAPI()
durable = FastAPI()


@commit.post("/tasks")
def create_task_commit_only(title: str) -> dict[str, str]:
    """The bare endpoint and the durable commit of its two tasks; nothing runs them."""
    _ledger.add(_calls(title))
    return {"status": "created", "title": title}


@durable.post("/tasks")
def create_task_durable(title: str, background_tasks: fastapi.BackgroundTasks) -> dict[str, str]:
    """Committed before the response, run by FastAPI after it, then recorded as done."""
    ids = _ledger.add(_calls(title))
    background_tasks.add_task(write_audit, f"created task {title!r}")
    background_tasks.add_task(send_email, "ada@example.com")
    background_tasks.add_task(_ledger.done, ids)
    return {"status": "created", "title": title}
