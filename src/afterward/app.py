"""`Afterward`: the task registry, the store, the settings, and this process's runner."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import logging
import random
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, NamedTuple, ParamSpec

from .calls.in_memory import CallSite, InMemoryCall, record_not_durable, stand_in
from .calls.naming import Target
from .calls.roundtrip import check_round_trip
from .calls.serialization import check_arguments, encode_call, encode_typed_call
from .config import Execution, Settings
from .errors import (
    ArgumentNotSerializable,
    ConfigurationError,
    FunctionNotImportable,
    TaskRefused,
)
from .jobs import Job, NewJob
from .retry import RetryPolicy
from .stores import Store, store_from_url
from .stores.base import TransactionalStore
from .tasks import TaskRegistry, options_of
from .worker.embedded import EmbeddedWorker
from .worker.executor import Executor
from .worker.identity import new_worker_id
from .worker.runner import Runner

__all__ = ["Afterward"]

P = ParamSpec("P")

_STATE_ATTRIBUTE = "afterward"

log = logging.getLogger("afterward")


class _Template(NamedTuple):
    """What every call of one callable shares: the task without id or payload, and the
    callable as a worker will find it."""

    job: NewJob
    target: Target


def new_task_id() -> str:
    """A 32-hex-digit id that sorts by creation time: the time in nanoseconds, then 64
    random bits (`random` is reseeded in every forked child, so processes do not share a
    sequence; a tenth of the cost of `os.urandom`)."""
    return f"{time.time_ns():016x}{random.getrandbits(64):016x}"


class Afterward:
    """An application's background tasks: where they are stored and how they run.

    Zero configuration reads `AFTERWARD_URL` (default ``sqlite:///afterward.db``) and
    runs tasks in the web process. In code::

        afterward = Afterward(url="sqlite:///var/app/tasks.db", execution="workers")
        app = FastAPI(lifespan=afterward.lifespan)
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        execution: Execution | None = None,
        retry: RetryPolicy | None = None,
        tasks: Iterable[Callable[..., Any]] = (),
        store: Store | None = None,
        settings: Settings | None = None,
        strict: bool | None = None,
    ) -> None:
        chosen = {"url": url, "execution": execution, "retry": retry, "strict": strict}
        given: dict[str, object] = {k: v for k, v in chosen.items() if v is not None}
        self.settings = settings or Settings.from_env(**given)
        self.store: Store = store or store_from_url(self.settings.url)
        self.registry = TaskRegistry([*tasks, stand_in])
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller and not caller.startswith("afterward."):
            self.registry.allow_package(caller)
        self._stand_in_name = self.registry.name_of(stand_in)
        self._opened = False
        self._runner: Runner | None = None
        self._embedded: EmbeddedWorker | None = None
        self._lock = threading.Lock()
        self._templates: weakref.WeakKeyDictionary[Callable[..., Any], _Template]
        self._templates = weakref.WeakKeyDictionary()
        self.not_durable: dict[CallSite, str] = {}
        """`add_task` call sites seen in this process whose calls ran in memory, and why."""

    # -- finding the instance of an app -----------------------------------------------

    @classmethod
    def of(cls, app: Any, lifespan_state: Mapping[str, Any] | None = None) -> Afterward:
        """The `Afterward` a Starlette/FastAPI `app` uses.

        In order: the one its lifespan published (`lifespan_state`, shared with mounted
        sub-apps), the one installed on it (`install`), the one whose `lifespan` it was
        given (even when the lifespan has not run, as under a plain `TestClient(app)`),
        else one configured from the environment, created once and installed.
        """
        if lifespan_state is not None:
            published = lifespan_state.get(_STATE_ATTRIBUTE)
            if isinstance(published, Afterward):
                return published
        found = getattr(app.state, _STATE_ATTRIBUTE, None)
        if isinstance(found, Afterward):
            return found
        router = getattr(app, "router", None)
        owner = getattr(getattr(router, "lifespan_context", None), "__self__", None)
        chosen = owner if isinstance(owner, Afterward) else cls()
        chosen.install(app)
        return chosen

    def install(self, app: Any) -> None:
        """Make `app`'s `BackgroundTasks` use this instance, and treat the packages that
        define its endpoints as application code (see `TaskRegistry`)."""
        setattr(app.state, _STATE_ATTRIBUTE, self)
        for route in getattr(app, "routes", ()):
            module = getattr(getattr(route, "endpoint", None), "__module__", None)
            if module:
                self.registry.allow_package(module)

    @asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[dict[str, Any]]:
        """A lifespan for `FastAPI(lifespan=...)`: install, open the store, and in
        ``in_app`` mode start the embedded worker at startup (so work left by a crash is
        taken back at once); stop it gracefully at shutdown. The instance is published in
        the lifespan state, so mounted sub-apps use it too."""
        self.install(app)
        await self.open()
        if self.runs_in_app:
            self._ensure_embedded()
        try:
            yield {_STATE_ATTRIBUTE: self}
        finally:
            await self.aclose()

    # -- lifecycle --------------------------------------------------------------------

    @property
    def runs_in_app(self) -> bool:
        """Whether this process runs tasks itself (``execution="in_app"``)."""
        return self.settings.execution == "in_app"

    async def open(self) -> None:
        """Open the store (creating or upgrading its schema). Idempotent."""
        if not self._opened:
            await self.store.open()
            self._opened = True

    async def aclose(self) -> None:
        """Stop the embedded worker and close the store."""
        self.stop_embedded()
        if self._opened:
            self._opened = False
            await self.store.close()

    @property
    def runner(self) -> Runner:
        """This process's runner (created on first use)."""
        with self._lock:
            if self._runner is None:
                self._runner = Runner(
                    store=self.store,
                    registry=self.registry,
                    settings=self.settings,
                    worker_id=new_worker_id(),
                    executor=Executor(self.settings.concurrency),
                )
            return self._runner

    def _ensure_embedded(self) -> None:
        runner = self.runner
        with self._lock:
            if self._embedded is not None:
                return
            self._embedded = EmbeddedWorker(runner, self.settings.grace_period)
        self._embedded.start()
        atexit.register(self.stop_embedded)

    def stop_embedded(self) -> None:
        """Stop the embedded worker thread, if it runs (idempotent, blocking)."""
        embedded, self._embedded = self._embedded, None
        if embedded is not None:
            embedded.stop()
            atexit.unregister(self.stop_embedded)

    # -- producing --------------------------------------------------------------------

    def prepare(
        self,
        func: Callable[P, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        scope: Mapping[str, Any] | None = None,
    ) -> NewJob:
        """Check and encode one call as a task not yet stored, raising `TaskRefused`
        errors at once. `scope`: the caller's globals, where the object of a method is
        looked for by name (see `naming`)."""
        return self._call_of(self._template(func, scope), args, kwargs)

    def _template(self, func: Callable[..., Any], scope: Mapping[str, Any] | None) -> _Template:
        """What every task of `func` shares (its id and payload left empty), kept per
        callable: a function's name and options do not change."""
        try:
            found = self._templates.get(func)
        except TypeError:  # not weakly referenceable or not hashable: worked out each time
            return self._make_template(func, scope)
        if found is None:
            found = self._make_template(func, scope)
            with contextlib.suppress(TypeError):
                self._templates[func] = found
        return found

    def _make_template(
        self, func: Callable[..., Any], scope: Mapping[str, Any] | None
    ) -> _Template:
        target = self.registry.target(func, scope)
        if not self.runs_in_app and target.name.startswith("__main__:"):
            raise FunctionNotImportable(
                f"{target.name} is defined in a script run as __main__, which a worker cannot "
                "import: move the function into a module of your application"
            )
        options = options_of(target.func)
        retry = self.settings.retry.to_json()
        stored: dict[str, Any] = {k: options.get(k, v) for k, v in retry.items()}
        job = NewJob(
            id="",
            function=target.name,
            payload="",
            queue=options.get("queue", self.settings.default_queue),
            priority=options.get("priority", 0),
            max_attempts=int(stored["max_attempts"]),
            options=stored,
        )
        return _Template(job, target)

    def _call_of(
        self, template: _Template, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> NewJob:
        job, target = template
        name = job.function
        if target.args or target.kwargs:  # a functools.partial: its arguments come first
            args, kwargs = target.args + args, {**target.kwargs, **kwargs}
        check_arguments(target.func, name, args, kwargs)
        payload = self._payload(target, name, args, kwargs)
        return NewJob(
            id=new_task_id(),
            function=name,
            payload=payload,
            queue=job.queue,
            priority=job.priority,
            max_attempts=job.max_attempts,
            options=job.options,  # shared by the calls of one function: never mutated
        )

    def note_not_durable(
        self, func: Callable[..., Any], site: CallSite, refusal: TaskRefused
    ) -> str:
        """Note that the call at `site` runs in memory (logged once per site, kept in
        `not_durable`); return the reason, as short as a stand-in row keeps it."""
        reason = _first_sentence(str(refusal))
        record_not_durable(site, reason)  # for every instance: afterward.testing, pytest
        if site not in self.not_durable:
            self.not_durable[site] = reason
            log.warning(
                "%s: add_task(%s) runs in memory after the response, as FastAPI's "
                "BackgroundTasks would, and is not durable: %s (strict mode refuses this "
                "call: Afterward(strict=True) or AFTERWARD_STRICT=1)",
                site,
                _describe(func),
                refusal,
            )
        return reason

    def _payload(
        self, target: Target, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> str:
        """The call's arguments as stored: plain JSON decoded by the function's annotations
        when that gives them back exactly, else JSON that carries their types.

        :raises TaskRefused: neither gives them back exactly (the first reason is kept).
        """
        limit = self.settings.max_payload
        try:
            payload = encode_call(name, args, kwargs, limit)
            check_round_trip(target.func, name, args, kwargs, payload)
            return payload
        except ArgumentNotSerializable as plain:
            try:
                payload = encode_typed_call(name, args, kwargs, limit)
                check_round_trip(target.func, name, args, kwargs, payload)
            except ArgumentNotSerializable:
                raise plain from None
            return payload

    def stand_in(self, func: Callable[..., Any], site: CallSite, refusal: TaskRefused) -> NewJob:
        """The row that holds an in-memory call's place in its chain (see `in_memory`),
        after noting the call site (`note_not_durable`)."""
        reason = self.note_not_durable(func, site, refusal)
        call = _describe(func)
        kwargs = {"call": call, "site": str(site), "reason": reason}
        options = {**self.settings.retry.to_json(), "max_attempts": 1, "time_limit": None}
        return NewJob(
            id=new_task_id(),
            function=self._stand_in_name,
            payload=encode_call(self._stand_in_name, (), kwargs),
            queue=self.settings.default_queue,
            max_attempts=1,
            options=options,
        )

    async def enqueue_chain(self, tasks: Sequence[NewJob], *, reserve: bool) -> list[str]:
        """Store `tasks` (from `prepare`) as one chain in one transaction; return their ids.

        With `reserve`, this process's runner holds them to run right away (`run_chain`).
        """
        if len(tasks) > 1:
            chain_id = tasks[0].id
            tasks = [
                dataclasses.replace(t, chain_id=chain_id, prev_id=tasks[i - 1].id if i else None)
                for i, t in enumerate(tasks)
            ]
        return await self._store_jobs(list(tasks), reserve=reserve)

    async def enqueue(self, func: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs) -> str:
        """Store one task outside a request (a script, a worker, a test); return its id."""
        (task_id,) = await self._store_jobs([self.prepare(func, args, kwargs)], reserve=False)
        return task_id

    async def enqueue_many(
        self, func: Callable[..., Any], calls: Iterable[Sequence[Any] | Mapping[str, Any]]
    ) -> list[str]:
        """Store one task of `func` per item of `calls`, all in one transaction (bulk).

        An item is the task's positional arguments (a tuple or list) or its keyword
        arguments (a mapping). The tasks are independent, not a chain. Returns their ids::

            await afterward.enqueue_many(send_reminder, [(user.id,) for user in users])
        """
        template = self._template(func, None)  # once: the same for every call
        tasks = [
            # A tuple or list is tested first: an ABC's isinstance costs 0.3 µs a call.
            self._call_of(template, tuple(c), {})
            if isinstance(c, tuple | list) or not isinstance(c, Mapping)
            else self._call_of(template, (), dict(c))
            for c in calls
        ]
        if not tasks:
            return []
        return await self._store_jobs(tasks, reserve=False)

    async def _store_jobs(self, jobs: list[NewJob], *, reserve: bool) -> list[str]:
        """One `Store.enqueue`; in in-app mode this process then runs what comes due."""
        await self.open()
        runner = self.runner if reserve else None
        ids = await self.store.enqueue(
            jobs,
            # A reserved chain is taken at once by its runner: on the runner's clock (the
            # store's), it must already be due.
            now=runner.clock() if runner else time.time(),
            reserve_for=runner.worker_id if runner else None,
            lease=self.settings.lease,
        )
        if runner is not None:
            runner.reserve(ids)
        if self.runs_in_app:
            self._ensure_embedded()
        return ids

    async def enqueue_in(
        self, transaction: Any, func: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> str:
        """Store one task inside the caller's open database transaction (PostgreSQL).

        `transaction`: a psycopg `AsyncConnection` or a SQLAlchemy `AsyncSession` /
        `AsyncConnection` whose transaction is open. The task commits or rolls back with
        what the application wrote in it, and no worker sees it before the commit::

            async with conn.transaction():
                await conn.execute("INSERT INTO orders ...", order)
                await afterward.enqueue_in(conn, send_receipt, order.id)

        :raises ConfigurationError: the store cannot join a caller's transaction.
        """
        store = self._transactional()
        job = self.prepare(func, args, kwargs)
        (task_id,) = await store.enqueue_in(transaction, [job], now=time.time())
        return task_id

    def enqueue_in_sync(
        self, transaction: Any, func: Callable[P, Any], /, *args: P.args, **kwargs: P.kwargs
    ) -> str:
        """`enqueue_in` for synchronous code: a psycopg `Connection` or a SQLAlchemy
        `Session` / `Connection` (e.g. a sync endpoint's database session)."""
        store = self._transactional()
        job = self.prepare(func, args, kwargs)
        (task_id,) = store.enqueue_in_sync(transaction, [job], now=time.time())
        return task_id

    def _transactional(self) -> TransactionalStore:
        if not isinstance(self.store, TransactionalStore):
            raise ConfigurationError(
                f"enqueueing inside your own transaction needs the PostgreSQL store; "
                f"this app's store is {self.store.url}"
            )
        return self.store

    async def run_chain(
        self, ids: Sequence[str], in_memory: Mapping[str, InMemoryCall] | None = None
    ) -> BaseException | None:
        """Run a reserved chain now, in this process (after a response): stored tasks by
        name, `in_memory` calls (by the id of their stand-in) as given. Returns the error
        of the task that failed, if one did.

        Outside in-app mode no embedded worker renews the chain's leases, so this call
        renews them itself while the chain runs.
        """
        if self.runs_in_app:
            return await self.runner.run_chain(ids, in_memory or {})
        async with self.runner.renewing():
            return await self.runner.run_chain(ids, in_memory or {})

    # -- looking up -------------------------------------------------------------------

    async def get(self, task_id: str) -> Job:
        """A task with its attempts. :raises TaskNotFound:"""
        await self.open()
        return await self.store.get(task_id)


def _describe(func: Callable[..., Any]) -> str:
    """A callable named for a person, without its arguments or its object's repr."""
    inner = getattr(func, "func", func) if isinstance(func, functools.partial) else func
    name = getattr(inner, "__qualname__", None) or type(inner).__qualname__
    module = getattr(inner, "__module__", None) or type(inner).__module__
    return f"{module}.{name}"


def _first_sentence(text: str, limit: int = 300) -> str:
    """What a stand-in row keeps of a refusal: its first sentence, at most `limit` long."""
    head = text.split(". ", 1)[0]
    return head if len(head) <= limit else head[: limit - 1] + "…"
