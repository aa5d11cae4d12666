"""Commands that change tasks: `retry`, `cancel`, `purge`."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.progress import Progress
from rich.text import Text

from ..jobs import JobState
from ..stores import JobFilter, Store
from ._common import UrlOption, find_task, stderr, stdout, with_store
from .text import FULL_LIMIT, shown

__all__ = ["cancel", "purge", "retry"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


TaskIdArgument = Annotated[
    str, typer.Argument(help="The task's id, or a unique start of it.", show_default=False)
]


def retry(task_id: TaskIdArgument, url: UrlOption = None) -> None:
    """Queue a failed or cancelled task again, with a fresh budget of attempts."""

    async def action(store: Store) -> str:
        job = await find_task(store, task_id)
        await store.retry(job.id, now=time.time())
        return job.id

    retried = with_store(url, action)
    stdout().print(Text.assemble("task ", shown(retried), " queued again"))


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
"""Tasks read at once while counting what purge will delete."""
_STEPS = 20
"""At most this many deletions make one purge of many tasks (the progress bar's steps)."""
_STEP_LEAST = 1000
"""Fewer tasks than this are purged in one step."""


async def _finished_before(store: Store, states: Sequence[JobState], cutoff: float) -> list[float]:
    """When each task in `states` that finished before `cutoff` finished, oldest first."""
    times: list[float] = []
    where = JobFilter(states=states)
    offset = 0
    while True:
        page = await store.list(where, limit=_PAGE, offset=offset)
        times += [
            j.finished_at for j in page if j.finished_at is not None and j.finished_at < cutoff
        ]
        if len(page) < _PAGE:
            return sorted(times)
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
