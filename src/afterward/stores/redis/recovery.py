"""Recovery: the workers holding leases (lease_holders.lua), and taking back the running
tasks whose lease ran out or whose holder is dead (lost.lua, then each one's attempt
closed as lost by fail.lua, `decide_lost` saying whether it runs again)."""

from __future__ import annotations

from collections.abc import Sequence

from ...jobs import decide_lost
from .connection import Connection
from .hashes import split_hashes, stamp
from .outcomes import fail, spoil

__all__ = ["lease_holders", "recover"]


async def lease_holders(conn: Connection) -> list[str]:
    """The workers holding a lease on a running task or a reservation, sorted."""
    return sorted(await conn.run_script("lease_holders"))


async def recover(conn: Connection, now: float, dead_workers: Sequence[str]) -> int:
    """Take back the lost tasks; how many were. One whose hash cannot be read is failed
    for good."""
    jobs, corrupt = split_hashes(await conn.run_script("lost", stamp(now), *dead_workers))
    taken = await spoil(conn, corrupt, now, "lost") if corrupt else 0
    for job in jobs:
        owner = job.lease_owner
        assert owner is not None
        dead = owner in dead_workers
        failure = decide_lost(job, now, dead=dead)
        mode = "any" if dead else "expired"
        taken += await fail(
            conn, job.id, owner, job.attempts, failure, now, mode=mode, outcome="lost"
        )
    return taken
