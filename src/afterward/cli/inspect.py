"""Read-only commands: `status`, `ls`, `show`.

Every value read from the store goes through `text.shown`: stored text is printed as it
is, never as Rich markup, with control characters visible and long values cut.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..calls.redaction import arguments_to_show
from ..jobs import Job, JobState
from ..stores import JobFilter
from ._common import UrlOption, format_time, stdout, with_store
from .text import FULL_LIMIT, shown

__all__ = ["ls", "show", "status"]

_STATE_STYLE = {
    JobState.WAITING: "dim",
    JobState.QUEUED: "cyan",
    JobState.SCHEDULED: "blue",
    JobState.RUNNING: "yellow",
    JobState.SUCCEEDED: "green",
    JobState.FAILED: "bold red",
    JobState.CANCELLED: "magenta",
}
_OTHER = "other"
"""The `status` column counting tasks in a state no afterward writes."""


def _state(state: object) -> Text:
    style = _STATE_STYLE.get(state, "") if isinstance(state, JobState) else ""
    return shown(state.value if isinstance(state, JobState) else state, style=style)


def _time(timestamp: float | None) -> Text:
    return shown(format_time(timestamp))


def status(url: UrlOption = None) -> None:
    """Count tasks by queue and state."""
    counts = with_store(url, lambda store: store.counts())
    known = {s.value for s in JobState}
    by_queue: dict[str, Counter[str]] = defaultdict(Counter)
    for (queue, state), n in counts.items():
        name = state.value if isinstance(state, JobState) else str(state)
        by_queue[str(queue)][name if name in known else _OTHER] += n
    columns = [s.value for s in JobState]
    if any(_OTHER in c for c in by_queue.values()):
        columns.append(_OTHER)
    table = Table(title="afterward tasks", show_footer=True)
    table.add_column("queue", footer="all", overflow="fold")
    for name in columns:
        total = sum(q[name] for q in by_queue.values())
        table.add_column(
            _state(JobState(name) if name in known else name), justify="right", footer=str(total)
        )
    for queue in sorted(by_queue):
        table.add_row(shown(queue), *(str(by_queue[queue][name]) for name in columns))
    stdout().print(table)


def ls(
    url: UrlOption = None,
    state: Annotated[list[JobState] | None, typer.Option(help="Only these states.")] = None,
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    function: Annotated[str | None, typer.Option(help="Function name contains this.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
) -> None:
    """List tasks, newest first. Long values are cut to a few hundred characters."""
    where = JobFilter(states=state or None, queue=queue, function=function)
    jobs = with_store(url, lambda store: store.list(where, limit=limit))
    table = Table(title=f"{len(jobs)} task(s)")
    for column in ("id", "function", "queue", "state", "attempts", "created", "last error"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        table.add_row(
            shown(job.id),
            shown(job.function),
            shown(job.queue),
            _state(job.state),
            shown(f"{job.attempts}/{job.max_attempts}"),
            _time(job.created_at),
            shown(job.last_error or ""),
        )
    stdout().print(table)


def show(task_id: str, url: UrlOption = None) -> None:
    """Show one task: its call, its chain, and every attempt with its traceback.

    Arguments marked secret (``Annotated[str, Secret]``, ``@task(redact=[...])``) are
    shown as ``[redacted]``; values over 64 KiB are cut, with a note of their length.
    """
    job = with_store(url, lambda store: store.get(task_id))
    stdout().print(_summary(job))
    attempts = Table(title="attempts")
    for column in ("#", "worker", "started", "finished", "outcome", "error"):
        attempts.add_column(column, overflow="fold")
    for a in job.history:
        attempts.add_row(
            shown(a.number),
            shown(a.worker),
            _time(a.started_at),
            _time(a.finished_at),
            shown(a.outcome or "running"),
            shown(a.error or "", limit=FULL_LIMIT, lines=True),
        )
    stdout().print(attempts)
    for a in job.history:
        if a.traceback:
            trace = shown(str(a.traceback).rstrip(), limit=FULL_LIMIT, lines=True)
            title = Text.assemble("attempt ", shown(a.number), " traceback")
            stdout().print(Panel(trace, title=title))


def _summary(job: Job) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    chain = f"{job.chain_id or '-'} (after {job.prev_id or '-'}, before {job.next_id or '-'})"
    rows = [
        ("id", shown(job.id, limit=FULL_LIMIT)),
        ("function", shown(job.function, limit=FULL_LIMIT)),
        ("arguments", shown(arguments_to_show(job.payload, job.options), limit=FULL_LIMIT)),
        ("queue", shown(job.queue, limit=FULL_LIMIT)),
        ("state", _state(job.state)),
        ("attempts", shown(f"{job.attempts} of {job.max_attempts}")),
        ("created", _time(job.created_at)),
        ("run at", _time(job.run_at)),
        ("finished", _time(job.finished_at)),
        ("chain", shown(chain, limit=FULL_LIMIT)),
        ("last error", shown(job.last_error or "-", limit=FULL_LIMIT, lines=True)),
    ]
    for name, value in rows:
        grid.add_row(name, value)
    return grid
