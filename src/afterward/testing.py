"""Helpers for an application's own tests.

``await drain(afterward)`` runs every task that is due now, in this process, and raises
`TaskFailed` for the first that failed, so a test sees a task's error where it happened::

    client.post("/orders", json=order)      # in_app mode: the request's tasks already ran
    await drain(afterward)                  # workers mode: run what the request enqueued

`not_durable_calls()` lists the `add_task` call sites whose calls could not be stored and
ran in memory, so a suite can find them before strict mode (``AFTERWARD_STRICT=1``) is
turned on. The pytest plugin (`afterward.pytest_plugin`) prints them after a run.
"""

from __future__ import annotations

import asyncio

from .app import Afterward
from .calls.in_memory import CallSite, not_durable_sites
from .errors import TaskFailed

__all__ = ["drain", "drain_blocking", "not_durable_calls"]


async def drain(afterward: Afterward, *, raise_on_failure: bool = True) -> list[str]:
    """Run due tasks until none is due; return the ids of tasks that did not succeed.

    :raises TaskFailed: with `raise_on_failure`, for the first task that did not succeed.
    """
    unsuccessful = await afterward.home.run(afterward.runner.drain)
    if unsuccessful and raise_on_failure:
        job = await afterward.get(unsuccessful[0])
        raise TaskFailed(job.id, job.function, job.last_error or job.state.value)
    return unsuccessful


def drain_blocking(afterward: Afterward, *, raise_on_failure: bool = True) -> list[str]:
    """`drain` for synchronous tests (no event loop running in this thread)."""
    return asyncio.run(drain(afterward, raise_on_failure=raise_on_failure))


def not_durable_calls() -> dict[CallSite, str]:
    """Every `add_task` call site whose calls ran in memory in this process (not stored,
    so not durable), by any `Afterward`, with the reason it gave, in the order first seen.

    ``str(site)`` is ``path/to/file.py:42``; ``site.file`` and ``site.line`` its parts::

        assert not not_durable_calls(), "add_task calls that strict mode would refuse"
    """
    return not_durable_sites()
