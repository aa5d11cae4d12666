"""What an app's store holds, read from a synchronous test."""

from __future__ import annotations

import asyncio

from afterward import Afterward, Job, JobState
from afterward.stores import JobFilter


def rows(app: object) -> list[Job]:
    """Every task the app's store holds, oldest first."""
    afterward = Afterward.of(app)

    async def read() -> list[Job]:
        await afterward.open()
        return list(reversed(await afterward.store.list(JobFilter())))

    return asyncio.run(read())


def stored(app: object) -> list[JobState]:
    """States of every task the app's store holds, oldest first."""
    return [job.state for job in rows(app)]
