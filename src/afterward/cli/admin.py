"""Commands that change tasks: `retry`, `cancel`, `purge`."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Sequence
from typing import Annotated

import typer
from rich.progress import Progress
from rich.text import Text

from ..errors import InvalidTransition, TaskNotFound
from ..jobs import Job, JobState
from ..stores import JobFilter, Store
from ._common import AmbiguousId, UrlOption, find_task, report, stderr, stdout, with_store
from .text import FULL_LIMIT, shown

__all__ = ["cancel", "purge", "retry"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


TaskIdArgument = Annotated[
    str, typer.Argument(help="The task's id, or a unique start of it.", show_default=False)
]


def retry(
    task_ids: Annotated[
        list[str] | None,
        typer.Argument(help="The tasks' ids, or unique starts of them.", show_default=False),
    ] = None,
    failed: Annotated[
        bool,
        typer.Option("--failed", help="Retry every failed task (of --queue and --function)."),
    ] = False,
    queue: Annotated[
        str | None,
        typer.Option(help="With --failed: only the tasks of this queue.", show_default="all"),
    ] = None,
    function: Annotated[
        str | None,
        typer.Option(
            help="With --failed: only tasks whose function name contains this.",
            show_default="all",
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="With --failed: do not ask for confirmation.")
    ] = False,
    url: UrlOption = None,
) -> None:
    """Queue failed or cancelled tasks again, each with a fresh budget of attempts.

    Give the tasks' ids, or --failed for every failed task: it says how many first and
    asks. A task that cannot be retried is reported and the others are retried all the
    same; the command then exits with code 1. Many tasks show a progress bar on a
    terminal.
    """
    if failed and task_ids:
        raise typer.BadParameter("give task ids or --failed, not both")
    if not failed and not task_ids:
        raise typer.BadParameter("give task ids, or --failed to retry every failed task")
    if task_ids and (queue is not None or function is not None):
        raise typer.BadParameter("--queue and --function go with --failed, not with ids")
    if task_ids:
        errors = _retry_ids(url, task_ids)
    else:
        errors = _retry_failed(
            url, JobFilter(states=[JobState.FAILED], queue=queue, function=function), yes=yes
        )
    for error in errors:
        report(error)
    if errors:
        raise typer.Exit(1)


def _retry_ids(url: str | None, task_ids: Sequence[str]) -> list[str]:
    """Retry the tasks of these ids or starts of ids, saying each one retried; return
    what went wrong with the others."""
    retried, errors = with_store(url, lambda store: _retry(store, task_ids, resolve=True))
    for task_id in retried:
        stdout().print(Text.assemble("task ", shown(task_id), " queued again"))
    if len(task_ids) > 1:
        stdout().print(f"queued {len(retried)} task(s) again")
    return errors


def _retry_failed(url: str | None, where: JobFilter, *, yes: bool) -> list[str]:
    """Retry the failed tasks `where` selects, after saying how many and asking unless
    `yes`; return what went wrong with any of them."""
    found = with_store(url, lambda store: _ids(store, where))
    what = Text("failed task(s)")
    if where.queue is not None:
        what.append_text(Text.assemble(" of queue ", shown(where.queue)))
    if where.function is not None:
        what.append_text(Text.assemble(" whose function contains ", shown(where.function)))
    if not found:
        stdout().print(Text.assemble("no ", what, ": nothing to retry"))
        return []
    stdout().print(Text.assemble(f"{len(found)} ", what, " will be queued again"))
    if not yes:
        typer.confirm(f"Retry these {len(found)} task(s)?", abort=True)
    retried, errors = with_store(url, lambda store: _retry(store, found, resolve=False))
    stdout().print(f"queued {len(retried)} task(s) again")
    return errors


async def _ids(store: Store, where: JobFilter) -> list[str]:
    """The ids of the tasks matching `where`, oldest first."""
    ids = [j.id async for page in _pages(store, where) for j in page]
    return list(dict.fromkeys(reversed(ids)))  # a page may repeat one as tasks change


async def _retry(
    store: Store, tasks: Sequence[str], *, resolve: bool
) -> tuple[list[str], list[str]]:
    """Retry each of `tasks` (ids or, with `resolve`, unique starts of ids), advancing a
    progress bar when there are several; return the ids retried and what went wrong with
    the others (no such task, or one that is not failed or cancelled)."""
    console = stderr()
    retried: list[str] = []
    errors: list[str] = []
    done: set[str] = set()
    show = console.is_terminal and len(tasks) > 1
    with Progress(console=console, transient=True, disable=not show) as bar:
        progress = bar.add_task("retrying", total=len(tasks))
        for task in tasks:
            try:
                task_id = (await find_task(store, task)).id if resolve else task
                if task_id not in done:  # given twice, as an id and a start of it
                    await store.retry(task_id, now=time.time())
                    retried.append(task_id)
                    done.add(task_id)
            except (TaskNotFound, InvalidTransition, AmbiguousId) as exc:
                errors.append(str(exc))
            bar.advance(progress)
    return retried, errors


def cancel(task_id: TaskIdArgument, url: UrlOption = None) -> None:
    """Cancel a task that has not started yet, and the rest of its chain."""

    async def action(store: Store) -> list[str]:
        job = await find_task(store, task_id)
        return await store.cancel(job.id, now=time.time())

    ids = with_store(url, action)
    cancelled = shown(", ".join(ids), limit=FULL_LIMIT)
    stdout().print(Text.assemble(f"cancelled {len(ids)} task(s): ", cancelled))


def _duration(text: str) -> float:
    """Seconds in ``30s``, ``15m``, ``12h``, ``7d`` or ``90`` (seconds).

    :raises typer.BadParameter: not a duration, or not a finite one of zero or more
        (``nan`` once made purge delete every finished task on PostgreSQL).
    """
    try:
        seconds = float(text[:-1]) * _UNITS[text[-1]] if text[-1] in _UNITS else float(text)
    except (ValueError, IndexError):
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise typer.BadParameter(
            f"{text!r} is not a duration of zero or more like 30s, 15m, 12h or 7d"
        )
    return seconds


def purge(
    url: UrlOption = None,
    state: Annotated[
        list[JobState] | None,
        typer.Option(help="States to purge.", show_default="succeeded and cancelled"),
    ] = None,
    older_than: Annotated[
        str, typer.Option(help="Only tasks finished longer ago than this (30s, 15m, 12h, 7d).")
    ] = "7d",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete finished tasks and their attempts, after saying how many and asking.

    Many tasks are deleted in steps, oldest first, with a progress bar on a terminal.
    """
    states = state or [JobState.SUCCEEDED, JobState.CANCELLED]
    unfinished = [s for s in states if not s.is_terminal]
    if unfinished:
        raise typer.BadParameter(f"only finished tasks can be purged, not {unfinished[0].value}")
    cutoff = time.time() - _duration(older_than)
    names = ", ".join(s.value for s in states)
    finished = with_store(url, lambda store: _finished_before(store, states, cutoff))
    what = f"{names} task(s) finished more than {older_than} ago"
    if not finished:
        stdout().print(f"no {what}: nothing to purge")
        return
    stdout().print(f"{len(finished)} {what} will be deleted")
    if not yes:
        typer.confirm(f"Delete these {len(finished)} task(s)?", abort=True)
    deleted = with_store(url, lambda store: _purge(store, states, finished, cutoff))
    stdout().print(f"purged {deleted} task(s)")


_PAGE = 5000
"""Tasks read at once while counting what purge will delete or retry will queue."""
_STEPS = 20
"""At most this many deletions make one purge of many tasks (the progress bar's steps)."""
_STEP_LEAST = 1000
"""Fewer tasks than this are purged in one step."""


async def _finished_before(store: Store, states: Sequence[JobState], cutoff: float) -> list[float]:
    """When each task in `states` that finished before `cutoff` finished, oldest first."""
    times: list[float] = []
    async for page in _pages(store, JobFilter(states=states)):
        times += [
            j.finished_at for j in page if j.finished_at is not None and j.finished_at < cutoff
        ]
    return sorted(times)


async def _pages(store: Store, where: JobFilter) -> AsyncIterator[list[Job]]:
    """The tasks matching `where`, newest first, `_PAGE` at a time."""
    offset = 0
    while True:
        page = await store.list(where, limit=_PAGE, offset=offset)
        yield page
        if len(page) < _PAGE:
            return
        offset += len(page)


async def _purge(
    store: Store, states: Sequence[JobState], finished: Sequence[float], cutoff: float
) -> int:
    """Purge what finished before `cutoff`: in steps of the tasks in `finished` (their
    finishing times) when there are many, advancing a progress bar."""
    step = max(_STEP_LEAST, math.ceil(len(finished) / _STEPS))
    # Each step deletes what finished before a later task's time; the last one uses the
    # cutoff itself, so the whole purge deletes exactly what one call would.
    bounds = [*finished[step::step], cutoff]
    console = stderr()
    deleted = 0
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        progress = bar.add_task("purging", total=len(finished))
        for bound in bounds:
            deleted += await store.purge(states=states, finished_before=min(bound, cutoff))
            bar.update(progress, completed=deleted)
    return deleted
