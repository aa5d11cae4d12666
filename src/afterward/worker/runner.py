"""The runner: acquire due tasks, run them, report the outcome, keep leases alive.

One `Runner` per process and store. `run_job()` runs one acquired task and records its
outcome; `run()` is the worker loop (`afterward.worker.loop`); `run_chain()` runs a
request's reserved chain right after its response (in-app mode); `upkeep` renews
leases and takes back work from dead or expired holders.

A plain (`def`) task that overruns its time limit is failed at the limit, but Python
cannot stop its thread, which stays lost to the pool. A runner made with
``retire_when_stuck=True`` (a worker process) then retires: it stops taking work, lets its
other tasks finish, hands back the rest and returns from `run()` with `retired` set, so
that its process exits and is replaced by a fresh one. Otherwise (the web process's
in-app runner) it only logs the lost thread loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ..calls.in_memory import InMemoryCall, stand_in, stand_in_for
from ..calls.serialization import decode_call
from ..config import Settings
from ..errors import AfterwardError, TimeLimitExceeded
from ..jobs import Job, decide_failure, permanent_failure
from ..retry import RetryPolicy
from ..stores.base import Store
from ..tasks import TaskRegistry, options_of
from .batches import Batches
from .clock import StoreClock
from .executor import Executor, is_async_callable
from .health import StoreHealth
from .leases import Leases
from .loop import WorkerLoop
from .refusals import refusal_reason
from .upkeep import Upkeep

__all__ = ["Runner"]

log = logging.getLogger("afterward.worker")

_STORE_BACKOFF = 1.0
"""Seconds to wait after the store failed before trying again."""


class Runner:
    """Runs tasks from one store as one worker identity."""

    def __init__(
        self,
        *,
        store: Store,
        registry: TaskRegistry,
        settings: Settings,
        worker_id: str,
        executor: Executor,
        queues: Sequence[str] | None = None,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
        retire_when_stuck: bool = False,
        watch: bool = True,
    ) -> None:
        self.worker_id = worker_id
        self.store = store
        self.settings = settings
        self.queues = list(queues) if queues else None
        """The queues this runner takes from (None: every queue)."""
        self.clock = clock or StoreClock()
        """Now, in the store's time."""
        self.health = StoreHealth()
        """Whether the store answers, for logging an outage once."""
        self.leases = Leases()
        """What this runner holds; renewed by `upkeep`."""
        self.retiring = asyncio.Event()
        """Set when a stuck thread makes this runner retire (see `retired`)."""
        self.retired: str | None = None
        """Why `run()` stopped on its own (a task thread is stuck), or None."""
        self.watch = watch
        """Whether an idle `run()` waits on the store's own signal of new work
        (`Store.wait_for_work`). If not (an app's in-app runner, sharing the web server's
        loop), it waits for `nudge` or the poll interval."""
        self.nudged = asyncio.Event()
        """Set by `nudge`: this process stored work for this runner to take."""
        self.executor = executor
        """Calls the task functions (plain ones in its threads)."""
        self._registry = registry
        self._rng = rng
        self._batches = Batches(store, worker_id, self.clock, settings.lease)
        self.upkeep = Upkeep(
            store, worker_id, self.clock, settings, self.leases, self.health, self.nudge
        )
        """Renews the leases, takes back lost work (`maintain`)."""
        self._retire_when_stuck = retire_when_stuck

    # -- running one task -------------------------------------------------------------

    async def run_job(
        self,
        job: Job,
        ran: Callable[[], None] = lambda: None,
        succeed: Callable[[Job], Awaitable[bool]] | None = None,
        given: InMemoryCall | None = None,
        failed: Callable[[BaseException], None] = lambda _: None,
    ) -> bool:
        """Run one acquired task and record its outcome; True if it succeeded. `ran` is
        called once the function has returned or raised, before the outcome is written;
        `succeed` writes a success (default: with the other successes of this loop);
        `given` is the in-memory call a stand-in row holds the place of; `failed` is told
        the error of a failed attempt."""
        self.leases.hold(job.id, job.attempts)
        try:
            return await self._run_job(job, ran, succeed, given, failed)
        except Exception:  # e.g. out of memory while recording: never leave it unnoticed
            log.exception(
                "task %s: the worker failed while running it; it is taken back when its "
                "lease expires",
                job.id,
            )
            return False
        finally:
            self.leases.drop([job.id])

    async def _run_job(
        self,
        job: Job,
        ran: Callable[[], None],
        succeed: Callable[[Job], Awaitable[bool]] | None,
        given: InMemoryCall | None,
        failed: Callable[[BaseException], None],
    ) -> bool:
        try:
            func, args, kwargs = self._call_of(job, given)
            policy = self._policy(job, func)
        except Exception as exc:  # the row itself is wrong: no retry can fix it
            ran()
            failed(exc)
            return await self._refuse(job, exc)
        started = time.perf_counter()
        try:
            await self.executor.call(func, args, kwargs, policy.time_limit)
        except Exception as exc:
            ran()
            failed(exc)
            failure = decide_failure(job, exc, policy, self.clock(), self._rng)
            verdict = "will retry" if failure.retry_at is not None else "failed for good"
            log.error(
                "task %s (%s) attempt %d/%d %s: %s%s",
                job.id,
                job.function,
                job.attempts,
                job.max_attempts,
                verdict,
                failure.error,
                # the capped traceback as stored, not `exc_info`: an error's text can be huge
                "" if failure.retry_at is not None else f"\n{failure.traceback.rstrip()}",
            )
            await self._report(
                lambda: self.store.fail(
                    job.id, self.worker_id, job.attempts, failure, now=self.clock()
                ),
                job,
            )
            plain = not is_async_callable(func)
            if isinstance(exc, TimeLimitExceeded) and plain and self.executor.stuck:
                self._thread_stuck(job, policy.time_limit)
            return False
        ran()
        log.info(
            "task %s (%s) succeeded in %.1f ms",
            job.id,
            job.function,
            (time.perf_counter() - started) * 1000,
        )
        if succeed is not None:
            return await self._report(lambda: succeed(job), job)
        completions = self._batches.completions
        return await self._report(lambda: completions.call((job.id, job.attempts)), job)

    def _call_of(
        self, job: Job, given: InMemoryCall | None
    ) -> tuple[Callable[..., Any], list[Any], dict[str, Any]]:
        """What to call for `job`: the in-memory call its stand-in holds the place of, or
        the registered function its row names, with its decoded arguments."""
        if given is not None:
            return given.func, list(given.args), dict(given.kwargs)
        func = self._registry.resolve(job.function)
        args, kwargs = decode_call(func, job.payload)
        if func is stand_in:
            func = stand_in_for(job.attempts)
        return func, args, kwargs

    async def _refuse(self, job: Job, error: Exception) -> bool:
        """Fail a row that names a function this app does not run, or whose arguments or
        options cannot be decoded, for good (whatever its attempts left); return False."""
        reason = refusal_reason(error, secret=bool(job.options.get("redact")))
        log.error("task %r refused: %r", job.id, reason)  # row text, never raw
        refusal = permanent_failure(reason)
        await self._report(
            lambda: self.store.fail(
                job.id, self.worker_id, job.attempts, refusal, now=self.clock()
            ),
            job,
        )
        return False

    def _thread_stuck(self, job: Job, time_limit: float | None) -> None:
        """A plain function overran its time limit and still holds its thread: retire
        (see `run`), or, when this runner may not, say loudly that a thread is lost."""
        threads = self.settings.concurrency
        stuck = self.executor.stuck
        if not self._retire_when_stuck:
            log.error(
                "task %s (%s) overran its time limit of %ss; Python cannot stop the plain "
                "function, which keeps its thread: %d of %d task thread(s) of this process "
                "are held by overrunning tasks. Restart the process to get them back, or make "
                "the task return in time (an async def task is cancelled at its limit).",
                job.id,
                job.function,
                time_limit,
                stuck,
                threads,
            )
            return
        if self.retired is None:
            self.retired = (
                f"task {job.id} ({job.function}) overran its time limit of {time_limit}s and "
                "its thread cannot be stopped"
            )
            log.error(
                "%s: this worker stops taking tasks, lets its other running tasks finish "
                "(%.0f s grace), hands back the rest and exits to be replaced by a fresh "
                "process",
                self.retired,
                self.settings.grace_period,
            )
            self.retiring.set()

    async def _report(self, write: Callable[[], Awaitable[bool]], job: Job) -> bool:
        """Record an outcome; while the store is unreachable, keep trying with backoff
        for as long as the lease could still be valid (after that the write would be
        refused anyway, and the task runs again elsewhere)."""
        give_up_at = time.monotonic() + self.settings.lease
        delay = _STORE_BACKOFF / 4
        while True:
            try:
                self.leases.settling.add(job.id)
                try:
                    accepted = await write()
                    # Stop renewing before the renewal can see the lease gone and take
                    # this task's own outcome for a loss.
                    self.leases.drop([job.id])
                finally:
                    self.leases.settling.discard(job.id)
                self.health.answered()
                break
            except Exception as exc:  # the store, or a transient lack of memory or threads
                if time.monotonic() + delay > give_up_at:
                    log.error(
                        "task %s: could not record its outcome (%s); it will run again", job.id, exc
                    )
                    return False
                self.health.failed(f"recording the outcome of task {job.id}", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _STORE_BACKOFF * 4)
        if not accepted:
            log.warning(
                "task %s: outcome of attempt %d discarded, this worker no longer holds its "
                "lease (another worker may run it again)",
                job.id,
                job.attempts,
            )
        return accepted

    def _policy(self, job: Job, func: Callable[..., Any]) -> RetryPolicy:
        policy = self.settings.retry.with_stored(job.options)
        retry_on = options_of(func).get("retry_on")
        return replace(policy, retry_on=retry_on) if retry_on is not None else policy

    # -- a request's chain, in the web process -----------------------------------------

    def reserve(self, ids: Sequence[str]) -> None:
        """Note tasks reserved for this worker at enqueue, so their leases are renewed
        until `run_chain` claims them (or, if it never does, for one lease)."""
        self.leases.reserve(ids)

    async def run_chain(
        self, ids: Sequence[str], in_memory: Mapping[str, InMemoryCall]
    ) -> BaseException | None:
        """Run reserved tasks one after another; stop at the first that does not succeed
        and return its error. A task whose id is in `in_memory` is a stand-in: the call
        it holds the place of runs instead.

        What is left is handed back, for this process's or any worker's runner to take.
        """
        self.leases.claim(ids)
        errors: list[BaseException] = []
        done = 0
        steps = self._batches.chain_steps
        following = dict(itertools.pairwise(ids))
        taken: dict[str, Job | None] = {}

        async def succeed(job: Job) -> bool:
            # The success and the take of the next task: one write for both.
            completed, taken[job.id] = await steps.call(
                ((job.id, job.attempts), following.get(job.id))
            )
            return completed

        try:
            job = (await steps.call((None, ids[0])))[1] if ids else None
            while job is not None and await self.run_job(
                job, succeed=succeed, given=in_memory.get(job.id), failed=errors.append
            ):
                done += 1
                job = taken.get(job.id)
            if done < len(ids):
                await self.store.release(self.worker_id, ids[done:], now=self.clock())
                self.nudge()
        except AfterwardError:
            log.exception("running the request's tasks %s failed; a worker will take them", ids)
        finally:
            self.leases.drop(ids)
        return errors[-1] if errors else None

    @contextlib.asynccontextmanager
    async def renewing(self) -> AsyncIterator[None]:
        """Renew this runner's leases while the block runs (for a process with no worker
        loop of its own: a web process in workers mode running a request's chain)."""
        stop = asyncio.Event()
        renewal = asyncio.create_task(self.upkeep.maintain(stop))
        try:
            yield
        finally:
            stop.set()
            await renewal

    # -- the worker loop --------------------------------------------------------------

    def nudge(self) -> None:
        """Tell an idle `run()` that this process just stored work it may take."""
        self.nudged.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Run due tasks until `stop` is set, then wind down gracefully (`WorkerLoop`).

        A runner made with ``retire_when_stuck`` winds down the same way on its own, with
        `retired` set, when a plain function's thread is stuck past its time limit.
        """
        await WorkerLoop(self).run(stop)

    async def acquire(self, limit: int) -> list[Job]:
        """Take up to `limit` due tasks; on a store error, note it, back off, and take none."""
        try:
            jobs = await self.store.acquire(
                self.worker_id,
                now=self.clock(),
                lease=self.settings.lease,
                limit=limit,
                queues=self.queues,
            )
        except Exception as exc:  # the store, or a transient lack of memory or threads
            self.health.failed("acquiring tasks", exc)
            await asyncio.sleep(_STORE_BACKOFF)
            return []
        self.health.answered()
        if jobs:
            self.upkeep.busy()
        return jobs

    async def drain(self) -> list[str]:
        """Run due tasks until none is due; return the ids of tasks that did not succeed."""
        unsuccessful = []
        while jobs := await self.acquire(self.settings.concurrency):
            results = await asyncio.gather(*(self.run_job(j) for j in jobs))
            unsuccessful += [j.id for j, ok in zip(jobs, results, strict=True) if not ok]
        return unsuccessful
