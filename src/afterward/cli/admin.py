"""Commands that change tasks: `retry`, `cancel`, `purge`."""

from __future__ import annotations

import math
import time
from typing import Annotated

import typer
from rich.text import Text

from ..jobs import JobState
from ._common import UrlOption, stdout, with_store
from .text import FULL_LIMIT, shown

__all__ = ["cancel", "purge", "retry"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def retry(task_id: str, url: UrlOption = None) -> None:
    """Queue a failed or cancelled task again, with a fresh budget of attempts."""
    with_store(url, lambda store: store.retry(task_id, now=time.time()))
    stdout().print(Text.assemble("task ", shown(task_id), " queued again"))


def cancel(task_id: str, url: UrlOption = None) -> None:
    """Cancel a task that has not started yet, and the rest of its chain."""
    ids = with_store(url, lambda store: store.cancel(task_id, now=time.time()))
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
        typer.Option(help="States to purge (default: succeeded and cancelled)."),
    ] = None,
    older_than: Annotated[
        str, typer.Option(help="Only tasks finished longer ago than this (30s, 15m, 12h, 7d).")
    ] = "7d",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete finished tasks and their attempts."""
    states = state or [JobState.SUCCEEDED, JobState.CANCELLED]
    unfinished = [s for s in states if not s.is_terminal]
    if unfinished:
        raise typer.BadParameter(f"only finished tasks can be purged, not {unfinished[0].value}")
    cutoff = time.time() - _duration(older_than)
    names = ", ".join(s.value for s in states)
    if not yes:
        typer.confirm(f"Delete {names} tasks finished more than {older_than} ago?", abort=True)
    deleted = with_store(url, lambda store: store.purge(states=states, finished_before=cutoff))
    stdout().print(f"purged {deleted} task(s)")
