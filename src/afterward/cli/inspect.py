"""Read-only commands: `status`, `ls`, `show`."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table

from ..jobs import Job, JobState
from ..stores import JobFilter
from ._common import UrlOption, format_time, stdout, with_store

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


def _state(state: JobState) -> str:
    return f"[{_STATE_STYLE[state]}]{state.value}[/]"


def status(url: UrlOption = None) -> None:
    """Count tasks by queue and state."""
    counts = with_store(url, lambda store: store.counts())
    by_queue: dict[str, dict[JobState, int]] = defaultdict(dict)
    for (queue, state), n in counts.items():
        by_queue[queue][state] = n
    table = Table(title="afterward tasks", show_footer=True)
    table.add_column("queue", footer="all")
    for state in JobState:
        total = sum(q.get(state, 0) for q in by_queue.values())
        table.add_column(_state(state), justify="right", footer=str(total))
    for queue in sorted(by_queue):
        table.add_row(queue, *(str(by_queue[queue].get(s, 0)) for s in JobState))
    stdout().print(table)


def ls(
    url: UrlOption = None,
    state: Annotated[list[JobState] | None, typer.Option(help="Only these states.")] = None,
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    function: Annotated[str | None, typer.Option(help="Function name contains this.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """List tasks, newest first."""
    where = JobFilter(states=state or None, queue=queue, function=function)
    jobs = with_store(url, lambda store: store.list(where, limit=limit))
    table = Table(title=f"{len(jobs)} task(s)")
    for column in ("id", "function", "queue", "state", "attempts", "created", "last error"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        table.add_row(
            job.id,
            job.function,
            job.queue,
            _state(job.state),
            f"{job.attempts}/{job.max_attempts}",
            format_time(job.created_at),
            job.last_error or "",
        )
    stdout().print(table)


def show(task_id: str, url: UrlOption = None) -> None:
    """Show one task: its call, its chain, and every attempt with its traceback."""
    job = with_store(url, lambda store: store.get(task_id))
    stdout().print(_summary(job))
    attempts = Table(title="attempts")
    for column in ("#", "worker", "started", "finished", "outcome", "error"):
        attempts.add_column(column, overflow="fold")
    for a in job.history:
        attempts.add_row(
            str(a.number),
            a.worker,
            format_time(a.started_at),
            format_time(a.finished_at),
            a.outcome or "running",
            a.error or "",
        )
    stdout().print(attempts)
    for a in job.history:
        if a.traceback:
            stdout().print(Panel(a.traceback.rstrip(), title=f"attempt {a.number} traceback"))


def _summary(job: Job) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    rows = [
        ("id", job.id),
        ("function", job.function),
        ("arguments", job.payload),
        ("queue", job.queue),
        ("state", _state(job.state)),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("created", format_time(job.created_at)),
        ("run at", format_time(job.run_at)),
        ("finished", format_time(job.finished_at)),
        (
            "chain",
            f"{job.chain_id or '-'} (after {job.prev_id or '-'}, before {job.next_id or '-'})",
        ),
        ("last error", job.last_error or "-"),
    ]
    for name, value in rows:
        grid.add_row(name, value)
    return grid
