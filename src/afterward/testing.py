"""Helpers for an application's own tests.

``await drain(afterward)`` runs every task that is due now, in this process, and raises
`TaskFailed` for the first that failed, so a test sees a task's error where it happened::

    client.post("/orders", json=order)      # in_app mode: the request's tasks already ran
    await drain(afterward)                  # workers mode: run what the request enqueued
"""

from __future__ import annotations

import asyncio

from .app import Afterward
from .errors import TaskFailed

__all__ = ["drain", "drain_blocking"]


async def drain(afterward: Afterward, *, raise_on_failure: bool = True) -> list[str]:
    """Run due tasks until none is due; return the ids of tasks that did not succeed.

    :raises TaskFailed: with `raise_on_failure`, for the first task that did not succeed.
    """
    await afterward.open()
    unsuccessful = await afterward.runner.drain()
    if unsuccessful and raise_on_failure:
        job = await afterward.store.get(unsuccessful[0])
        raise TaskFailed(job.id, job.function, job.last_error or job.state.value)
    return unsuccessful


def drain_blocking(afterward: Afterward, *, raise_on_failure: bool = True) -> list[str]:
    """`drain` for synchronous tests (no event loop running in this thread)."""
    return asyncio.run(drain(afterward, raise_on_failure=raise_on_failure))
