"""Read-only commands: `status`, `ls`, `show`.

Every value read from the store goes through `text.shown`: stored text is printed as it
is, never as Rich markup, with control characters visible and long values cut.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..calls.redaction import arguments_to_show
from ..jobs import Attempt, Job, JobState
from ..stores import JobFilter
from ._common import UrlOption, find_task, format_time, stdout, with_store
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


JsonOption = Annotated[
    bool,
    typer.Option(
        "--json", help="Print one JSON document on stdout instead of a table (shape above)."
    ),
]


def status(url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Count tasks by queue and state.

    With --json: {"url": str, "queues": {queue: {state: int}}, "total": {state: int}},
    every state named, zeros included.
    """
    counts = with_store(url, lambda store: store.counts())
    known = {s.value for s in JobState}
    by_queue: dict[str, Counter[str]] = defaultdict(Counter)
    for (queue, state), n in counts.items():
        name = state.value if isinstance(state, JobState) else str(state)
        by_queue[str(queue)][name if name in known else _OTHER] += n
    columns = [s.value for s in JobState]
    if any(_OTHER in c for c in by_queue.values()):
        columns.append(_OTHER)
    if as_json:
        queues = {q: {name: by_queue[q][name] for name in columns} for q in sorted(by_queue)}
        total = {name: sum(q[name] for q in by_queue.values()) for name in columns}
        _print_json({"url": _store_url(url), "queues": queues, "total": total})
        return
    # No outer edge: the headers of every state fit in 80 columns.
    table = Table(title="afterward tasks", show_footer=True, show_edge=False, collapse_padding=True)
    table.add_column("queue", footer="all", overflow="fold")
    for name in columns:
        total_n = sum(q[name] for q in by_queue.values())
        table.add_column(
            _state(JobState(name) if name in known else name), justify="right", footer=str(total_n)
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
    as_json: JsonOption = False,
) -> None:
    """List tasks, newest first: one line per task, whatever the terminal's width.

    Ids are shown whole; the other columns are cut (…) or left out to fit, and long
    values are cut to a few hundred characters. A unique start of an id is enough for
    show, retry and cancel.

    With --json: {"url": str, "tasks": [task, ...]}, each task as show --json prints it
    less its "history".
    """
    where = JobFilter(states=state or None, queue=queue, function=function)
    jobs = with_store(url, lambda store: store.list(where, limit=limit))
    if as_json:
        _print_json({"url": _store_url(url), "tasks": [_job_json(j) for j in jobs]})
        return
    headers = ("id", "state", "tries", "function", "last error", "queue", "created")
    rows = [
        (
            shown(job.id),
            _state(job.state),
            shown(f"{job.attempts}/{job.max_attempts}"),
            shown(job.function),
            shown(job.last_error or ""),
            shown(job.queue),
            _time(job.created_at),
        )
        for job in jobs
    ]
    console = stdout()
    widths = _fit([Text(h) for h in headers], rows, console.width)
    table = Table(title=f"{len(jobs)} task(s)", box=None, pad_edge=False, header_style="bold")
    kept = [i for i, w in enumerate(widths) if w is not None]
    for i in kept:
        table.add_column(headers[i], width=widths[i], no_wrap=True, overflow="ellipsis")
    for row in rows:
        table.add_row(*(row[i] for i in kept))
    console.print(table)


_GAP = 2
"""Spaces between two columns of `ls` (one cell's padding on each side)."""
_WHOLE = 3
"""`ls` columns never cut: id, state, tries. The others follow, the first kept longest."""
_LEAST = (12, 10, 5, 19)
"""The narrowest each other `ls` column is shown (function, last error, queue, created):
narrower, it is left out, the last first (a time is shown whole or not at all)."""


def _fit(headers: Sequence[Text], rows: Sequence[Sequence[Text]], width: int) -> list[int | None]:
    """Each `ls` column's width (None: left out) for a table at most `width` wide."""
    natural = [max([h.cell_len] + [r[i].cell_len for r in rows]) for i, h in enumerate(headers)]
    whole, other = natural[:_WHOLE], natural[_WHOLE:]
    least = [min(n, m) for n, m in zip(other, _LEAST, strict=True)]
    kept = len(other)

    def room() -> int:
        return width - sum(whole) - _GAP * (_WHOLE + kept - 1)

    while kept and sum(least[:kept]) > room():
        kept -= 1
    left = room() - sum(least[:kept])
    widths: list[int | None] = list(whole)
    for i in range(len(other)):
        if i >= kept:
            widths.append(None)
            continue
        extra = min(other[i] - least[i], max(left, 0))
        left -= extra
        widths.append(least[i] + extra)
    return widths


def show(
    task_id: Annotated[str, typer.Argument(help="The task's id, or a unique start of it.")],
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one task: its call, its chain, and every attempt with its traceback.

    Arguments marked secret (``Annotated[str, Secret]``, ``@task(redact=[...])``) are
    shown as ``[redacted]``; values over 64 KiB are cut, with a note of their length.

    With --json, one object: id, function, arguments (the stored arguments as JSON
    text, {"args": [...], "kwargs": {...}}, secrets as "[redacted]"), queue, state,
    priority, attempts, max_attempts, chain_id, prev_id, next_id, unique_key,
    lease_owner, last_error, and "history": [{number, worker, outcome, error,
    traceback, started_at, finished_at}]. Each time X is given twice: X (ISO 8601 in
    UTC, "2027-01-15T08:00:00.000000Z") and X_epoch (seconds since the epoch): created_at,
    run_at, finished_at, lease_expires_at, and started_at, finished_at of attempts;
    null when there is none (or it is not a real time). Text is as stored (never cut),
    JSON-escaped: the output is ASCII.
    """
    job = with_store(url, lambda store: find_task(store, task_id))
    if as_json:
        _print_json(_job_json(job, history=job.history))
        return
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
        ("last outcome", shown(job.last_outcome or "-")),
        ("last error", shown(job.last_error or "-", limit=FULL_LIMIT, lines=True)),
    ]
    for name, value in rows:
        grid.add_row(name, value)
    return grid


# -- JSON -------------------------------------------------------------------------------


def _print_json(document: object) -> None:
    """One JSON document on stdout: ASCII only (every other character escaped), so no
    stored text reaches the terminal raw, and no NaN (not JSON)."""
    sys.stdout.write(json.dumps(document, ensure_ascii=True, allow_nan=False, indent=2) + "\n")


def _store_url(url: str | None) -> str:
    from ..config import Settings
    from ..stores.urls import redact_url

    return redact_url(url or Settings().url)


def _job_json(job: Job, *, history: Sequence[Attempt] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": _value(job.id),
        "function": _value(job.function),
        "arguments": arguments_to_show(job.payload, job.options),
        "queue": _value(job.queue),
        "state": _value(job.state),
        "priority": _value(job.priority),
        "attempts": _value(job.attempts),
        "max_attempts": _value(job.max_attempts),
        "chain_id": _value(job.chain_id),
        "prev_id": _value(job.prev_id),
        "next_id": _value(job.next_id),
        "unique_key": _value(job.unique_key),
        "lease_owner": _value(job.lease_owner),
        "last_error": _value(job.last_error),
    }
    out |= _times(created_at=job.created_at, run_at=job.run_at, finished_at=job.finished_at)
    out |= _times(lease_expires_at=job.lease_expires_at)
    if history is not None:
        out["history"] = [_attempt_json(a) for a in history]
    return out


def _attempt_json(attempt: Attempt) -> dict[str, Any]:
    out = {
        "number": _value(attempt.number),
        "worker": _value(attempt.worker),
        "outcome": _value(attempt.outcome),
        "error": _value(attempt.error),
        "traceback": _value(attempt.traceback),
    }
    return out | _times(started_at=attempt.started_at, finished_at=attempt.finished_at)


def _times(**stamps: object) -> dict[str, Any]:
    """``name``: ISO 8601 in UTC and ``name_epoch``: seconds, for each stored time."""
    out: dict[str, Any] = {}
    for name, stamp in stamps.items():
        real = isinstance(stamp, int | float) and not isinstance(stamp, bool)
        seconds = float(stamp) if real and math.isfinite(stamp) else None  # type: ignore[arg-type]
        out[name] = _iso(seconds)
        out[f"{name}_epoch"] = seconds
    return out


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    try:
        when = dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _value(value: object) -> object:
    """A stored value as JSON has it: text, numbers and null as they are, a state by
    its name, anything else a row may hold as its text."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, JobState):
        return value.value
    return str(value)
