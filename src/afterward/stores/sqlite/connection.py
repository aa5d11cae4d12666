"""One SQLite connection shared by a store: opening, migrating, group commits, threads.

Statements run under a lock in a worker thread, so no event loop waits on disk and the
connection can serve any loop. The connection and its threads close when the loop that
opened them shuts down (`afterward.loops`), and open again at the next call.

Writes are *group-committed*: the writes that arrive while one transaction is being
committed wait, then share the next ``BEGIN IMMEDIATE`` transaction (each in its own
savepoint, so one that raises leaves the others intact) and its one fsync. SQLite
serializes those transactions across processes.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor  # now: a worker audits later imports
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from ...errors import SchemaTooNew, StoreError
from ...loops import at_shutdown
from ..rows import UnreadableText
from ..sql_files import load_migrations, load_schema
from .transactions import BUSY_TIMEOUT_S, execute_script, retry_while_busy, transaction

__all__ = ["SQLiteConnection", "lenient_text", "path_from_url"]

T = TypeVar("T")
Row = dict[str, Any]


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> Row:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


def path_from_url(url: str) -> str:
    """``sqlite:///relative.db`` → ``relative.db``; ``sqlite:////abs.db`` → ``/abs.db``.

    :raises StoreError: not a SQLite URL.
    :raises ConfigurationError: ``sqlite:///:memory:`` (a store no other process sees,
        gone when this one ends), or query parameters (not read, so they would silently
        become part of the file's name).
    """
    from ...errors import ConfigurationError
    from ..urls import redact_url

    prefix = "sqlite:///"
    if not url.startswith(prefix):
        shown = redact_url(url)
        raise StoreError(f"not a SQLite URL: {shown!r} (expected sqlite:///path/to/file.db)")
    path = url[len(prefix) :] or "afterward.db"
    if "?" in path:
        raise ConfigurationError(
            f"query parameters are not supported in a SQLite store URL: {redact_url(url)!r}."
            f" Give only the file's path, as in sqlite:///{path.partition('?')[0]}"
        )
    if path == ":memory:":
        raise ConfigurationError(
            "sqlite:///:memory: is not durable and not shared: tasks would be lost when "
            "this process ends and no worker process would see them. Use a file path: "
            "sqlite:///afterward.db (in tests, a file in a temporary folder)"
        )
    return path


@contextmanager
def lenient_text(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Read text that is not UTF-8 as `UnreadableText` instead of failing the statement.

    SQLite stores whatever bytes it is given as TEXT (``CAST(x'ff' AS TEXT)``), and the
    driver's own decoding raises for the whole statement. This one is a Python call per
    text value, so it is only for reads that must not fail (inspection, recovery) and the
    second try of an acquire (`afterward.stores.sqlite.store`).
    """
    conn.text_factory = _lenient_text
    try:
        yield conn
    finally:
        conn.text_factory = str


def _lenient_text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return UnreadableText.of(raw)


class SQLiteConnection:
    """The store's connection; `call(fn)` runs ``fn(conn)`` under the lock, off the loop."""

    def __init__(self, path: str, *, synchronous: str) -> None:
        self.path = path
        self._synchronous = synchronous.upper()
        self._synchronous_now = self._synchronous
        """The level the connection is at (the writer thread switches it per commit)."""
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._watcher: sqlite3.Connection | None = None
        """A second connection that never writes: its data version moves on every commit
        to the file, this process's own included."""
        self._watcher_lock = threading.Lock()
        self._writes: list[_Write[Any]] = []
        """Writes waiting for the next group commit (guarded by `_writes_lock`)."""
        self._writes_lock = threading.Lock()
        self._writer: ThreadPoolExecutor | None = None
        """The one thread that commits; busy while `_committing`."""
        self._committing = False
        self._wanted = False
        """Between `open` and `close`: a call opens the connection again if it is shut."""
        self._take_back: Callable[[], None] = lambda: None

    @property
    def is_open(self) -> bool:
        """Whether `open()` has succeeded and `close()` not been called since."""
        return self._conn is not None

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` with the connection in a worker thread; SQLite errors → StoreError."""
        await self._reopen_if_shut()
        return await asyncio.to_thread(self._locked, fn)

    async def write(self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> T:
        """Run `fn` inside a write transaction, committed before this returns.

        `fn` must not begin or end transactions itself. It may share its transaction (and
        fsync) with other writes: if it raises, only its own changes are undone and the
        exception is raised here; if the commit fails, every write of it fails.

        A write that is not `durable` is committed without an fsync of its own (when
        no durable write shares its commit): a process crash keeps it, a power loss may
        undo it. The next durable commit makes it durable too (the WAL is written in
        order), so it is only for changes whose loss repeats work but loses none: taking
        a task (it then runs again) and renewing a lease.
        """
        await self._reopen_if_shut()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._writes_lock:
            writer = self._writer
            if writer is None:
                raise StoreError(f"the SQLite store {self.path} is not open")
            self._writes.append(_Write(fn, loop, future, durable))
            start = not self._committing
            self._committing = True
        if start:
            try:
                writer.submit(self._commit_waiting)
            except RuntimeError:  # `close()` shut the writer down since: none will commit
                self._fail_waiting(StoreError(f"the SQLite store {self.path} was closed"))
        return await future

    def _fail_waiting(self, error: StoreError) -> None:
        """Fail every write waiting for a commit that will not come."""
        with self._writes_lock:
            stranded, self._writes = self._writes, []
            self._committing = False
        for write in stranded:
            write.loop.call_soon_threadsafe(_set_outcomes, [(write.future, (None, error))])

    def _commit_waiting(self) -> None:
        """Commit the waiting writes, group by group, until none is left."""
        while True:
            with self._writes_lock:
                group, self._writes = self._writes, []
                if not group:
                    self._committing = False
                    return
            live = [w for w in group if not w.future.cancelled()]  # caller gave up: skip
            if live:
                self._commit_group(live)

    def _commit_group(self, group: list[_Write[Any]]) -> None:
        outcomes: list[tuple[_Write[Any], Any, BaseException | None]] = []
        try:
            with self._lock:
                if self._conn is None:
                    raise StoreError(f"the SQLite store {self.path} is not open")
                conn = self._conn
                self._set_synchronous(conn, any(w.durable for w in group))
                with transaction(conn):
                    for write in group:
                        conn.execute("SAVEPOINT afterward_write")
                        try:
                            outcomes.append((write, write.fn(conn), None))
                        except Exception as exc:
                            conn.execute("ROLLBACK TO afterward_write")
                            outcomes.append((write, None, exc))
                        conn.execute("RELEASE afterward_write")
        except Exception as exc:
            self._abandon()
            outcomes = [(write, None, exc) for write in group]
        self._settle(outcomes)

    def _settle(self, outcomes: list[tuple[_Write[Any], Any, BaseException | None]]) -> None:
        """Hand the outcomes to their callers: one wake-up per event loop, not per write."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for write, result, raised in outcomes:
            error = None if raised is None else self._as_store_error(raised)
            by_loop.setdefault(write.loop, []).append((write.future, (result, error)))
        for loop, settled in by_loop.items():
            with suppress(RuntimeError):  # that loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_set_outcomes, settled)

    def _set_synchronous(self, conn: sqlite3.Connection, durable: bool) -> None:
        """FULL (or the configured level) for a durable commit, else at most NORMAL."""
        level = self._synchronous
        if not durable and level in ("FULL", "EXTRA"):
            level = "NORMAL"
        if level != self._synchronous_now:
            conn.execute(f"PRAGMA synchronous={level}")
            self._synchronous_now = level

    def _as_store_error(self, exc: BaseException) -> BaseException:
        """SQLite's own errors as `StoreError` (naming the file); others as they are."""
        if not isinstance(exc, sqlite3.Error):
            return exc
        error = StoreError(f"SQLite store {self.path}: {exc}")
        error.__cause__ = exc
        return error

    def data_version(self) -> int:
        """A number that changes whenever anyone commits to the file (-1 when closed).

        Cheap (no disk I/O) and safe from any thread, so it may be polled on a loop.
        """
        with self._watcher_lock:
            if self._watcher is None:
                return -1
            try:
                return int(self._watcher.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error as exc:
                raise self._as_store_error(exc) from exc

    def _abandon(self) -> None:
        """Roll back a transaction a failed COMMIT left open (or a full disk broke)."""
        with self._lock:
            if self._conn is not None and self._conn.in_transaction:
                with suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")

    def _locked(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._conn is None:
                raise StoreError(f"the SQLite store {self.path} is not open")
            try:
                return fn(self._conn)
            except sqlite3.Error as exc:
                raise self._as_store_error(exc) from exc

    async def open(self, *, create: bool = True) -> None:
        """Connect, set WAL and the durability level, create or upgrade the schema.

        With ``create=False``, a file (or folder) that does not exist, or a file without
        afterward's schema, is left as it is and `StoreError` raised.
        """
        if self._conn is None:
            await asyncio.to_thread(self._open, create)
            self._take_back()
            self._take_back = at_shutdown(self._shut, late=True)
        self._wanted = True

    def _open(self, create: bool) -> None:
        with self._lock:
            if self._conn is not None:
                return
            if not create and not Path(self.path).is_file():
                raise StoreError(f"no afterward store at {self.path}: no such file")
            if create and self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            try:
                conn = sqlite3.connect(
                    self._target(create),
                    timeout=BUSY_TIMEOUT_S,
                    isolation_level=None,
                    check_same_thread=False,
                    uri=not create,
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open SQLite store {self.path}: {exc}") from exc
            try:
                conn.row_factory = _dict_row
                if not create:
                    self._check_exists(conn)
                retry_while_busy(lambda: conn.execute("PRAGMA journal_mode=WAL"))
                conn.execute(f"PRAGMA synchronous={self._synchronous}")
                self._synchronous_now = self._synchronous
                retry_while_busy(lambda: self._migrate(conn))
            except BaseException as exc:
                conn.close()
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"cannot open SQLite store {self.path}: {exc}") from exc
                raise
            self._watcher = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            with self._writes_lock:
                self._writer = ThreadPoolExecutor(1, thread_name_prefix="afterward-sqlite-writer")
            # Last: a concurrent `open` that sees the connection returns at once, so
            # everything else must be ready by then.
            self._conn = conn

    def _target(self, create: bool) -> str:
        """What `sqlite3.connect` opens: the path, or a URI that never creates the file."""
        if create:
            return self.path
        return f"file:{urllib.parse.quote(str(Path(self.path).absolute()))}?mode=rw"

    def _check_exists(self, conn: sqlite3.Connection) -> None:
        """Raise `StoreError` unless the file holds afterward's schema (read only)."""
        version = conn.execute("PRAGMA user_version").fetchone()["user_version"]
        if version == 0:
            raise StoreError(f"no afterward store at {self.path}: the file has no afterward tables")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        migrations = load_migrations("afterward.stores.sqlite")
        latest = migrations[-1].version
        with transaction(conn):
            version = conn.execute("PRAGMA user_version").fetchone()["user_version"]
            if version > latest:
                raise SchemaTooNew(
                    f"{self.path} has schema version {version}, newer than this afterward's "
                    f"{latest}: upgrade afterward"
                )
            if version == 0:
                execute_script(conn, load_schema("afterward.stores.sqlite"))
            else:
                for migration in migrations:
                    if migration.version > version:
                        execute_script(conn, migration.sql)
            conn.execute(f"PRAGMA user_version = {latest:d}")

    async def _reopen_if_shut(self) -> None:
        """Open again a connection its loop's shutdown closed (not one `close` closed)."""
        if self._conn is None and self._wanted:
            await self.open()

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        self._wanted = False
        self._take_back()
        await self._shut()

    async def _shut(self) -> None:
        with self._writes_lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            await asyncio.to_thread(writer.shutdown)  # commits what is already waiting
        conn, self._conn = self._conn, None
        if conn is not None:
            with self._lock:
                conn.close()
        with self._watcher_lock:
            watcher, self._watcher = self._watcher, None
            if watcher is not None:
                watcher.close()


@dataclass(frozen=True)
class _Write(Generic[T]):
    """One write waiting for a group commit, and where its result goes."""

    fn: Callable[[sqlite3.Connection], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]
    """Bound to `loop`: set only there (`_set_outcomes`)."""
    durable: bool


def _set_outcomes(settled: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, (result, error) in settled:
        if future.done():  # cancelled meanwhile
            continue
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
