"""Turn stored rows (mappings of column name to value) into `Job` and `Attempt` records,
and a `NewJob` into the row that stores it.

A row written by hand, by an older bug or by an attacker may not read as a task: text
that is not UTF-8, a time that is text, options that are not a JSON object, a state no
task has. `job_from_row` then raises `CorruptRow` naming the field; the stores fail such a
row for good instead of failing the batch it came in (`split_rows`), and show it to
operators through `readable_job`, with placeholders where the row cannot be read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

from ..jobs import Attempt, Job, JobState, NewJob, Outcome, describe

log = logging.getLogger("afterward.store")

__all__ = [
    "CorruptRow",
    "UnreadableText",
    "attempt_from_row",
    "job_from_row",
    "new_job_row",
    "readable_job",
    "split_rows",
    "state_or_failed",
]

Row = Mapping[str, Any]

_QUOTED = 40
"""Characters of a bad value a reason quotes at most (a hostile row can be megabytes)."""
_OUTCOMES: dict[Any, Outcome | None] = {None: None, **{o.value: o for o in Outcome}}
"""A stored outcome → `Outcome` (NULL: None); anything else raises (KeyError, or TypeError
if unhashable). A lookup takes about 12 ns per row, calling `Outcome` 440 ns."""


class CorruptRow(ValueError):
    """A stored row that cannot be read as a task; `field` names the column at fault."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem

    @property
    def reason(self) -> str:
        """The row's last error once failed: ``CorruptRow: options is not JSON (…)``."""
        return describe(self)

    def log_failed(self, job_id: object) -> None:
        """Say which row was failed for good, and why: its id by repr and cut, as a
        corrupt row's id is stored text like any other."""
        log.error("task %r cannot be read, failed for good: %s", str(job_id)[:64], self.reason)


class UnreadableText(str):
    """Stored text that is not UTF-8, as read: its characters decoded with U+FFFD for the
    bytes that are not, and `raw` the bytes as stored (to find the row again by them)."""

    raw: bytes

    @classmethod
    def of(cls, raw: bytes) -> UnreadableText:
        text = cls(raw.decode("utf-8", "replace"))
        text.raw = raw
        return text


def new_job_row(job: NewJob, now: float) -> dict[str, Any]:
    """The columns a new job is stored with."""
    state, run_at = job.start(now)
    return {
        "id": job.id,
        "function": job.function,
        "payload": job.payload,
        "queue": job.queue,
        "state": state.value,
        "priority": job.priority,
        "run_at": run_at,
        "max_attempts": job.max_attempts,
        "options": job.options.text,
        "chain_id": job.chain_id,
        "prev_id": job.prev_id,
        "unique_key": job.unique_key,
    }


def job_from_row(row: Mapping[str, Any], history: Iterable[Attempt] = ()) -> Job:
    """A `Job` from a row of the jobs table.

    :raises CorruptRow: a field cannot be read (the first one found is named).
    """
    try:
        id_, function, payload, queue = row["id"], row["function"], row["payload"], row["queue"]
        priority, attempts, max_attempts = row["priority"], row["attempts"], row["max_attempts"]
        # What the worker relies on, in a few type tests: a failure goes to `_diagnosis`.
        if not (
            type(id_) is str
            and type(function) is str
            and type(payload) is str
            and type(queue) is str
            and type(priority) is int
            and type(attempts) is int
            and type(max_attempts) is int
        ):
            raise TypeError("a field of the wrong type")
        return Job(
            id=id_,
            function=function,
            payload=payload,
            queue=queue,
            state=JobState(row["state"]),
            priority=priority,
            run_at=float(row["run_at"]),
            attempts=attempts,
            max_attempts=max_attempts,
            options=_options(row["options"]),
            chain_id=row["chain_id"],
            prev_id=row["prev_id"],
            next_id=row["next_id"],
            unique_key=row["unique_key"],
            lease_owner=row["lease_owner"],
            lease_expires_at=_time(row["lease_expires_at"]),
            created_at=float(row["created_at"]),
            finished_at=_time(row["finished_at"]),
            last_error=row["last_error"],
            last_outcome=_OUTCOMES[row["last_outcome"]],
            history=tuple(history),
        )
    except Exception:  # anything a bad value raises: the slow look below names it
        raise _diagnosis(row) from None


def split_rows(
    rows: Iterable[Row],
) -> tuple[list[Job], list[tuple[Row, CorruptRow]]]:
    """The rows that read as tasks, as `Job`s in order, and each row that does not with
    its error: the caller fails those for good, and the others run."""
    jobs: list[Job] = []
    corrupt: list[tuple[Row, CorruptRow]] = []
    for row in rows:
        try:
            jobs.append(job_from_row(row))
        except CorruptRow as exc:
            corrupt.append((row, exc))
    return jobs, corrupt


def readable_job(row: Mapping[str, Any], history: Iterable[Attempt] = ()) -> Job:
    """`job_from_row`, or for a row that cannot be read, the task as well as it can be
    shown: each field that cannot be read holds a placeholder (`_PLACEHOLDERS`: no options,
    time 0, text with U+FFFD for bytes that are not UTF-8), a state no task has reads as
    `failed` (it can never run), and `last_error` gives the first reason found."""
    try:
        return job_from_row(row, history)
    except CorruptRow as exc:
        first = exc
    fields = {name: _read(name, row.get(name))[0] for name in _FIELDS}
    return Job(**fields, last_error=first.reason, history=tuple(history))


def state_or_failed(value: Any) -> JobState:
    """A stored state; one that is no task's state counts as `failed` (see `readable_job`)."""
    try:
        return JobState(value)
    except ValueError:
        return JobState.FAILED


def attempt_from_row(row: Mapping[str, Any]) -> Attempt:
    """An `Attempt` from a row of the attempts table.

    :raises ValueError: its outcome is none of `Outcome`'s.
    """
    outcome = row["outcome"]
    return Attempt(
        number=row["number"],
        worker=row["worker"],
        started_at=float(row["started_at"]),
        finished_at=_time(row["finished_at"]),
        outcome=None if outcome is None else Outcome(outcome),
        error=row["error"],
        traceback=row["traceback"],
    )


def _options(stored: Any) -> dict[str, Any]:
    """A row's options: JSON text (each distinct text parsed once, then copied, so that no
    two jobs share a dict) or what the driver decoded."""
    parsed = _parsed_options(stored) if isinstance(stored, str) else stored
    if type(parsed) is dict:
        return dict(parsed)
    if stored is None:
        return {}
    raise TypeError("options are not a JSON object")


@lru_cache(maxsize=256)
def _parsed_options(text: str) -> Any:
    """The tasks of one function share their options, so a batch's rows repeat one text:
    parsing it once saves a `json.loads` per task taken."""
    return json.loads(text)


def _time(value: Any) -> float | None:
    """A stored time as a float (SQLite hands back whole numbers as ints)."""
    return None if value is None else float(value)


# -- the slow look at a row that did not read -------------------------------------------


def _diagnosis(row: Mapping[str, Any]) -> CorruptRow:
    """The first field of `row` that cannot be read, as a `CorruptRow`."""
    for name in _FIELDS:
        problem = _read(name, row.get(name))[1]
        if problem is not None:
            return CorruptRow(name, problem)
    return CorruptRow("row", "cannot be read")


def _read(name: str, value: Any) -> tuple[Any, str | None]:
    """A field's value as a `Job` holds it and None, or a placeholder and the problem."""
    reader, placeholder = _READERS[name]
    if isinstance(value, UnreadableText):
        return placeholder(value), "is not UTF-8"
    try:
        return reader(value), None
    except _Unfit as exc:
        return placeholder(value), str(exc)
    except (ValueError, TypeError, RecursionError, OverflowError):
        return placeholder(value), f"cannot be read ({_quote(value)})"


class _Unfit(ValueError):
    """A field's value is of the wrong kind; the argument says how, for `CorruptRow`."""


def _text(value: Any) -> str:
    if type(value) is not str:
        raise _Unfit(f"is not text ({_quote(value)})")
    return value


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _integer(value: Any) -> int:
    if type(value) is not int:
        raise _Unfit(f"is not an integer ({_quote(value)})")
    return value


def _number(value: Any) -> float:
    if type(value) is str or type(value) is bytes:  # SQLite keeps text it cannot convert
        raise _Unfit(f"is not a number ({_quote(value)})")
    return float(value)


def _optional_number(value: Any) -> float | None:
    return None if value is None else _number(value)


def _state(value: Any) -> JobState:
    try:
        return JobState(value)
    except ValueError:
        raise _Unfit(f"is not a task state ({_quote(value)})") from None


def _outcome(value: Any) -> Outcome | None:
    try:
        return _OUTCOMES[value]
    except (KeyError, TypeError):
        raise _Unfit(f"is not an attempt's outcome ({_quote(value)})") from None


def _checked_options(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise _Unfit(f"is not JSON ({_quote(value)})") from exc
        except RecursionError:
            raise _Unfit("is JSON nested too deeply") from None
    if value is None:
        return {}
    if type(value) is not dict:
        raise _Unfit(f"is not a JSON object ({_quote(value)})")
    return value


def _shown(value: Any) -> str:
    """Text for a field that is not: bytes decoded leniently, anything else by `str`."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _quote(value: Any) -> str:
    """`value` as a reason quotes it: its repr, cut to about `_QUOTED` characters."""
    if isinstance(value, str | bytes) and len(value) > _QUOTED:
        return f"{value[:_QUOTED]!r}… ({len(value)} long)"  # never a copy of it whole
    text = repr(value)
    return text if len(text) <= 2 * _QUOTED else text[: 2 * _QUOTED] + "…"


_READERS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "id": (_text, _shown),
    "function": (_text, _shown),
    "payload": (_text, _shown),
    "queue": (_text, _shown),
    "state": (_state, lambda _: JobState.FAILED),
    "priority": (_integer, lambda _: 0),
    "run_at": (_number, lambda _: 0.0),
    "attempts": (_integer, lambda _: 0),
    "max_attempts": (_integer, lambda _: 0),
    "options": (_checked_options, lambda _: {}),
    "chain_id": (_optional_text, _shown),
    "prev_id": (_optional_text, _shown),
    "next_id": (_optional_text, _shown),
    "unique_key": (_optional_text, _shown),
    "lease_owner": (_optional_text, _shown),
    "lease_expires_at": (_optional_number, lambda _: None),
    "created_at": (_number, lambda _: 0.0),
    "finished_at": (_optional_number, lambda _: None),
    "last_outcome": (_outcome, lambda _: None),
}
"""Each field but `last_error` (always shown as stored): how it is read, and what stands in
for it when it cannot be."""
_FIELDS = tuple(_READERS)
