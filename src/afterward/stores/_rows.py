"""Turn stored rows (mappings of column name to value) into `Job` and `Attempt` records,
and a `NewJob` into the row that stores it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from ..jobs import Attempt, Job, JobState, NewJob

__all__ = ["attempt_from_row", "job_from_row", "new_job_row", "options_texts"]


def options_texts(jobs: Sequence[NewJob]) -> list[str]:
    """Each job's options as stored (JSON text). The jobs of one batch usually share one
    options dict: each distinct dict is encoded once."""
    encoded: dict[int, str] = {}
    texts = []
    for job in jobs:
        text = encoded.get(id(job.options))
        if text is None:
            text = encoded[id(job.options)] = json.dumps(job.options)
        texts.append(text)
    return texts


def new_job_row(job: NewJob, now: float, options: str) -> dict[str, Any]:
    """The columns a new job is stored with (`options`: its options as stored)."""
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
        "options": options,
        "chain_id": job.chain_id,
        "prev_id": job.prev_id,
        "unique_key": job.unique_key,
    }


def job_from_row(row: Mapping[str, Any], history: Iterable[Attempt] = ()) -> Job:
    """A `Job` from a row of the jobs table."""
    return Job(
        id=row["id"],
        function=row["function"],
        payload=row["payload"],
        queue=row["queue"],
        state=JobState(row["state"]),
        priority=row["priority"],
        run_at=float(row["run_at"]),
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
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
        history=tuple(history),
    )


def attempt_from_row(row: Mapping[str, Any]) -> Attempt:
    """An `Attempt` from a row of the attempts table."""
    return Attempt(
        number=row["number"],
        worker=row["worker"],
        started_at=float(row["started_at"]),
        finished_at=_time(row["finished_at"]),
        outcome=row["outcome"],
        error=row["error"],
        traceback=row["traceback"],
    )


def _options(stored: Any) -> Any:
    """A row's options: JSON text (each distinct text parsed once, then copied, so that no
    two jobs share a dict) or what the driver decoded."""
    if isinstance(stored, str):
        parsed = _parsed_options(stored)
        return dict(parsed) if isinstance(parsed, dict) else parsed
    return dict(stored or {})


@lru_cache(maxsize=256)
def _parsed_options(text: str) -> Any:
    """The tasks of one function share their options, so a batch's rows repeat one text:
    parsing it once saves a `json.loads` per task taken."""
    return json.loads(text)


def _time(value: Any) -> float | None:
    """A stored time as a float (SQLite hands back whole numbers as ints)."""
    return None if value is None else float(value)
