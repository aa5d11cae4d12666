"""`Afterward`: the task registry, the store, the settings, and this process's runner."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, ParamSpec

from .calls.in_memory import InMemoryCall
from .calls.preparer import Preparer
from .config import Execution, Settings
from .errors import ConfigurationError
from .home import Home
from .jobs import Job, NewJob
from .log import configure_logging
from .loops import absorbing_cancel
from .retry import RetryPolicy
from .stores import Store, store_from_url
from .stores.base import TransactionalStore
from .tasks import TaskRegistry
from .worker.executor import Executor
from .worker.identity import new_worker_id
from .worker.runner import Runner

__all__ = ["Afterward"]

log = logging.getLogger("afterward.worker")

P = ParamSpec("P")

_STATE_ATTRIBUTE = "afterward"


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
        self.registry = TaskRegistry(tasks)
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller and not caller.startswith("afterward."):
            self.registry.allow_package(caller)
        self.home = Home(self.store.open, self._stop_runner)
        """The event loop this app's store and runner live on (see `afterward.home`)."""
        self._runner: Runner | None = None
        self._running: asyncio.Task[None] | None = None
        """The in-app runner's worker loop, on the home loop."""
        self._stop = asyncio.Event()
        self.calls = Preparer(self.registry, self.settings)
        """Turns calls into tasks not yet stored (or their in-memory stand-ins)."""
        configure_logging()  # afterward's lines show, unless the app's logging shows them

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
        ``in_app`` mode start the runner at startup (so work left by a crash is
        taken back at once); stop it gracefully at shutdown. The instance is published in
        the lifespan state, so mounted sub-apps use it too."""
        self.install(app)
        await self.open()
        if self.runs_in_app:
            await self.home.run(self._start_runner)
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
        """Open the store (creating or upgrading its schema) on the home loop. Idempotent."""
        await self.home.run(_nothing)

    async def aclose(self) -> None:
        """Stop the in-app runner (letting running tasks finish within the grace period)
        and close the store."""
        await self.home.close()
        await self.store.close()

    async def _stop_runner(self) -> None:
        """Wind the runner down, at `aclose` or when the home loop shuts down (the
        store's connections close after it: `afterward.loops`)."""
        running, self._running = self._running, None
        runner, self._runner = self._runner, None
        if running is not None:
            self._stop.set()
            await absorbing_cancel(running)
        if runner is not None:
            runner.executor.shutdown()

    @property
    def runner(self) -> Runner:
        """This process's runner, on the home loop (created on first use)."""
        if self._runner is None:
            self._runner = Runner(
                store=self.store,
                registry=self.registry,
                settings=self.settings,
                worker_id=new_worker_id(),
                executor=Executor(self.settings.concurrency),
                watch=False,  # on the web server's loop: nudged by this process's enqueues
            )
        return self._runner

    async def _start_runner(self) -> None:
        """Start the in-app runner on the home loop, unless it runs: it retries failed
        tasks when their backoff is over, runs tasks whose request could not run them,
        renews the leases of the chains requests run, and takes back work left by
        crashed processes."""
        if self._running is None or self._running.done():
            self._stop = asyncio.Event()
            self._running = asyncio.create_task(
                self._run_runner(self.runner, self._stop), name="afterward-runner"
            )

    @staticmethod
    async def _run_runner(runner: Runner, stop: asyncio.Event) -> None:
        try:
            await runner.run(stop)
        except Exception:
            log.exception("the in-app runner stopped on an error; the next task stored starts it")

    # -- producing --------------------------------------------------------------------

    def prepare(
        self,
        func: Callable[P, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        scope: Mapping[str, Any] | None = None,
    ) -> NewJob:
        """Check and encode one call as a task not yet stored (see `Preparer.prepare`).

        :raises TaskRefused: the call cannot be stored exactly (the message says why).
        """
        return self.calls.prepare(func, args, kwargs, scope)

    async def enqueue_chain(self, tasks: Sequence[NewJob], *, reserve: bool) -> list[str]:
        """Store `tasks` (from `prepare`) as one chain in one transaction; return their ids.

        With `reserve`, this process's runner holds them to run right away (`run_chain`).
        """
        if len(tasks) > 1:
            chain_id = tasks[0].id
            tasks = [
                t.linked(chain_id, tasks[i - 1].id if i else None) for i, t in enumerate(tasks)
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
        tasks = self.calls.prepare_many(func, calls)
        if not tasks:
            return []
        return await self._store_jobs(tasks, reserve=False)

    async def _store_jobs(self, jobs: list[NewJob], *, reserve: bool) -> list[str]:
        """One `Store.enqueue`; in in-app mode this process then runs what comes due."""
        return await self.home.run(lambda: self._store_jobs_here(jobs, reserve=reserve))

    async def _store_jobs_here(self, jobs: list[NewJob], *, reserve: bool) -> list[str]:
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
            await self._start_runner()
            if not reserve:
                self.runner.nudge()
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

        Outside in-app mode no runner of this process renews the chain's leases, so this
        call renews them itself while the chain runs.
        """
        return await self.home.run(lambda: self._run_chain_here(ids, in_memory or {}))

    async def _run_chain_here(
        self, ids: Sequence[str], in_memory: Mapping[str, InMemoryCall]
    ) -> BaseException | None:
        if self.runs_in_app:
            return await self.runner.run_chain(ids, in_memory)
        async with self.runner.renewing():
            return await self.runner.run_chain(ids, in_memory)

    # -- looking up -------------------------------------------------------------------

    async def get(self, task_id: str) -> Job:
        """A task with its attempts. :raises TaskNotFound:"""
        return await self.home.run(lambda: self.store.get(task_id))


async def _nothing() -> None:
    pass
