"""Changing tasks by hand: cancelling one that has not started (cancel.lua), queueing a
finished one again (retry.lua), and deleting finished tasks (purge.lua)."""

from __future__ import annotations

from collections.abc import Sequence

from ...errors import StoreError, TaskNotFound
from ...jobs import JobState, check_transition
from .connection import Connection
from .hashes import stamp
from .inspection import get_job

__all__ = ["cancel", "purge", "retry"]

_PURGE_BATCH = 500
"""Tasks deleted by one run of purge.lua."""


async def cancel(conn: Connection, job_id: str, now: float) -> list[str]:
    """Cancel a task that has not started and the rest of its chain; their ids.

    :raises TaskNotFound: there is no such task.
    :raises InvalidTransition: it has started.
    """
    answer = await conn.run_script("cancel", stamp(now), job_id)
    if answer[0] == "missing":
        raise TaskNotFound(job_id)
    if answer[0] == "state":
        check_transition(JobState(answer[1]), "cancel", job_id)
    return [str(i) for i in answer[1:]]


async def retry(conn: Connection, job_id: str, now: float, display: str) -> None:
    """Queue a failed or cancelled task again with a fresh budget of attempts.

    :raises TaskNotFound: there is no such task.
    :raises InvalidTransition: it is not failed or cancelled.
    :raises StoreError: its unique key is held by an unfinished task (`display`: the
        store's URL, for the message).
    """
    job = await get_job(conn, job_id)  # as shown: a corrupt one reads as failed
    check_transition(job.state, "retry", job_id)
    budget = int(job.options.get("max_attempts", job.max_attempts))
    answer = await conn.run_script("retry", stamp(now), job_id, str(budget))
    if answer[0] == "missing":
        raise TaskNotFound(answer[1])
    if answer[0] == "state":
        check_transition(JobState(answer[1]), "retry", job_id)
    if answer[0] == "conflict":
        raise StoreError(
            f"Redis store {display}: cannot retry task {job_id}: its unique key is held "
            f"by the unfinished task {answer[1]}"
        )


async def purge(conn: Connection, states: Sequence[str], before: float) -> int:
    """Delete the tasks in `states` (values, at least one) that finished before `before`;
    how many were."""
    deleted = 0
    while True:
        n, more = await conn.run_script("purge", stamp(before), _PURGE_BATCH, *states)
        deleted += int(n)
        if not more:
            return deleted
