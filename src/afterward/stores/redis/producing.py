"""Producing: new tasks stored in one run of enqueue.lua (chains, unique keys and a
reservation included), the batch sent as one argument (`hashes.encode_jobs`)."""

from __future__ import annotations

from collections.abc import Sequence

from ...jobs import NewJob
from .connection import Connection
from .hashes import encode_jobs, stamp

__all__ = ["enqueue"]


async def enqueue(
    conn: Connection,
    jobs: Sequence[NewJob],
    now: float,
    reserve_for: str | None,
    lease: float,
) -> list[str]:
    """Store `jobs` (checked, at least one); each one's id, or that of the unfinished task
    already holding its unique key (see `Store.enqueue`)."""
    args = [stamp(now), reserve_for or "", stamp(now + lease)]
    ids = await conn.run_script("enqueue", *args, encode_jobs(jobs))
    return [str(i) for i in ids]
