"""A task as a Redis hash: the mapping between Python values and the strings kept in
Redis, for the Redis store. No I/O here (see `afterward.stores.redis.store`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...jobs import Attempt, Job, NewJob
from ..base import JobFilter
from ..rows import (
    CorruptRow,
    UnreadableText,
    attempt_from_row,
    job_from_row,
    readable_job,
)

__all__ = [
    "attempt_records",
    "encode_jobs",
    "job_from_hash",
    "matches",
    "readable_hash",
    "split_hashes",
    "spoil_args",
    "stamp",
]

_INT_FIELDS = ("priority", "attempts", "max_attempts")
_FLOAT_FIELDS = ("run_at", "lease_expires_at", "created_at", "finished_at")
_TEXT_FIELDS = (
    "id",
    "function",
    "payload",
    "queue",
    "state",
    "options",
    "chain_id",
    "prev_id",
    "next_id",
    "unique_key",
    "lease_owner",
    "last_error",
    "last_outcome",
)
_JOB_FIELDS = (*_TEXT_FIELDS, *_INT_FIELDS, *_FLOAT_FIELDS)
_LOST_BEFORE = "WorkerLost:"
"""How the last error of an attempt lost with its worker starts (`jobs.decide_lost`): read
only in hashes stored before `last_outcome` was (see `_row`)."""

_BATCH = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":"))
"""`encode_jobs`'s encoder: compact, text as it is (see there)."""

Hash = Mapping[str, str]
"""A job hash as read: field → value (text that is not UTF-8 has surrogates for the bytes
that are not, see `afterward.stores.redis.connection`)."""


def stamp(seconds: float) -> str:
    """A time as stored: the shortest string that reads back as the same float."""
    return repr(float(seconds))


def encode_jobs(jobs: Sequence[NewJob]) -> str:
    """New jobs as enqueue.lua reads them: one JSON array holding an array of 11 strings
    per job, so that a batch is one script argument whatever its size, encoded in one C
    call (the script decodes it with ``cjson``). redis-py encodes each argument in Python
    before hiredis packs the command: one argument per batch costs the client less than
    11 per job.

    Absent values are ``''`` (a time or an id is never empty); a unique key is sent as
    ``'='`` + the key, so that an empty key stays a key. Text is not escaped to ASCII: the
    client encodes the whole text strictly, so that text with surrogates is refused as it
    is in any other argument.
    """
    return _BATCH.encode(
        [
            (
                job.id,
                job.function,
                job.payload,
                job.queue,
                str(int(job.priority)),
                "" if job.run_at is None else stamp(job.run_at),
                str(int(job.max_attempts)),
                job.options.text,
                job.chain_id or "",
                job.prev_id or "",
                "" if job.unique_key is None else "=" + job.unique_key,
            )
            for job in jobs
        ]
    )


def _pairs(flat: Sequence[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def job_from_hash(stored: Hash | Sequence[str], history: Iterable[Attempt] = ()) -> Job:
    """A `Job` from a job hash (a mapping, or the flat field/value array a script returns).

    :raises CorruptRow: a field cannot be read.
    """
    return job_from_row(_row(_fields(stored)), history)


def readable_hash(stored: Hash | Sequence[str], history: Iterable[Attempt] = ()) -> Job:
    """`job_from_hash`, or the task as well as it can be shown (`readable_job`)."""
    return readable_job(_row(_fields(stored)), history)


def split_hashes(
    rows: Iterable[Hash | Sequence[str]],
) -> tuple[list[Job], list[tuple[Hash, CorruptRow]]]:
    """The hashes that read as tasks, as `Job`s in order, and each that does not with its
    error (see `rows.split_rows`)."""
    jobs: list[Job] = []
    corrupt: list[tuple[Hash, CorruptRow]] = []
    for stored in rows:
        fields = _fields(stored)
        try:
            jobs.append(job_from_row(_row(fields)))
        except CorruptRow as exc:
            corrupt.append((fields, exc))
    return jobs, corrupt


def spoil_args(corrupt: Sequence[tuple[Hash, CorruptRow]], holder: str | None) -> list[Any]:
    """spoil.lua's four arguments per task: its id, holder (`holder`, or by default its
    own), attempts as stored, and the reason; text that is not UTF-8 as its bytes."""
    args: list[Any] = []
    for fields, error in corrupt:
        owner = fields.get("lease_owner", "") if holder is None else holder
        stored = (fields.get("id", ""), owner, fields.get("attempts", ""))
        args += (*(_wire(v) for v in stored), error.reason)
    return args


def _wire(text: str) -> str | bytes:
    """Stored text as a script argument: its own bytes (the client encodes strictly)."""
    return text if text.isascii() else text.encode("utf-8", "surrogateescape")


def _fields(stored: Hash | Sequence[str]) -> Hash:
    return stored if isinstance(stored, Mapping) else _pairs(stored)


def _row(fields: Hash) -> dict[str, Any]:
    """A job hash as a row for `rows`: numbers converted, text that is not UTF-8 as
    `UnreadableText`. A value that does not convert is left as it is, for `job_from_row`
    to name."""
    row: dict[str, Any] = {name: fields.get(name) for name in _JOB_FIELDS}
    if row["last_outcome"] is None and (
        row["last_error"] is not None or row["state"] == "succeeded"
    ):
        row["last_outcome"] = _outcome_before(row)  # stored by older code
    if not all(map(str.isascii, fields.values())):  # one pass in C for the usual case
        for name in _TEXT_FIELDS:
            value = row[name]
            if value is not None and not value.isascii():
                row[name] = _text(value)
    try:
        for name in _INT_FIELDS:
            row[name] = int(row[name])
        for name in _FLOAT_FIELDS:
            if row[name] is not None:
                row[name] = float(row[name])
    except (TypeError, ValueError):
        _convert_each(row)
    return row


def _outcome_before(row: Mapping[str, Any]) -> str:
    """The last outcome of a hash that succeeded or has an error but no outcome: stored by
    older code (the scripts write an outcome with each success and each error, but when
    acquire.lua fails a hash it cannot read before it runs). Read as the SQL stores'
    migrations fill it in: succeeded if the task did; else from its last error, which its
    last attempt that counted wrote: a lost attempt's error (`jobs.decide_lost`) means
    lost, so the task stays a suspect across the upgrade as older code held it
    (`afterward.worker.loop`); any other error means failed."""
    if row["state"] == "succeeded":
        return "succeeded"
    error = row["last_error"]
    return "lost" if isinstance(error, str) and error.startswith(_LOST_BEFORE) else "failed"


def _convert_each(row: dict[str, Any]) -> None:
    """`_row`'s conversions field by field, leaving each value that does not convert."""
    for name, kind in (*((n, int) for n in _INT_FIELDS), *((n, float) for n in _FLOAT_FIELDS)):
        if row[name] is None and kind is float:
            continue
        try:
            row[name] = kind(row[name])
        except (TypeError, ValueError):
            continue


def _text(value: str) -> str:
    """`value`, or `UnreadableText` when it came from bytes that are not UTF-8."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return UnreadableText.of(value.encode("utf-8", "surrogateescape"))
    return value


def attempt_records(stored: Mapping[str, str]) -> list[Attempt]:
    """A job's attempts hash (number → JSON record), oldest first."""
    rows = []
    for raw in stored.values():
        record = json.loads(raw)
        finished = record.get("finished_at")
        rows.append(
            {
                "number": int(record["number"]),
                "worker": record["worker"],
                "started_at": float(record["started_at"]),
                "finished_at": None if finished is None else float(finished),
                "outcome": record.get("outcome"),
                "error": record.get("error"),
                "traceback": record.get("traceback"),
            }
        )
    rows.sort(key=lambda r: r["number"])
    return [attempt_from_row(r) for r in rows]


def matches(stored: Mapping[str, str], where: JobFilter, states: set[str] | None) -> bool:
    """Whether a job hash passes `where` (`states`: its states as values, None for any)."""
    return (
        (states is None or stored.get("state") in states)
        and (where.queue is None or stored.get("queue") == where.queue)
        and (where.function is None or where.function in stored.get("function", ""))
        and (where.chain_id is None or stored.get("chain_id") == where.chain_id)
    )
