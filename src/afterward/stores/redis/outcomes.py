"""What becomes of taken tasks, each script fenced on the worker's lease: completions'
arguments (complete.lua, run by `taking` with the next acquire), failures (fail.lua),
hand-backs (release.lua), lease renewals (extend_leases.lua), and running tasks whose
hashes cannot be read, failed for good (spoil.lua)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...jobs import Failure
from ..rows import CorruptRow
from .connection import Connection
from .hashes import spoil_args, stamp

__all__ = ["complete_args", "extend_leases", "fail", "release", "spoil"]


def complete_args(worker: str, attempts: Sequence[tuple[str, int]], now: float) -> list[str | int]:
    """complete.lua's arguments: the time, the worker, then an id and attempt per task."""
    pairs = [str(v) for job_id, attempt in attempts for v in (job_id, int(attempt))]
    return [stamp(now), worker, *pairs]


async def fail(
    conn: Connection,
    job_id: str,
    worker: str,
    attempt: int,
    failure: Failure,
    now: float,
    *,
    mode: str = "live",
    outcome: str = "failed",
) -> bool:
    """Record the attempt's error: scheduled at `failure.retry_at`, else failed for good.
    `mode` is the fence: ``'live'`` (a worker reporting: its lease has not run out),
    ``'expired'`` (it has) or ``'any'`` (its holder is dead); `outcome` becomes the
    task's last outcome."""
    retry_at = "" if failure.retry_at is None else stamp(failure.retry_at)
    args = [stamp(now), job_id, worker, str(int(attempt)), mode, outcome]
    args += [failure.error, failure.traceback, retry_at]
    return bool(await conn.run_script("fail", *args))


async def release(conn: Connection, worker: str, ids: Sequence[str], now: float) -> int:
    """Hand `worker`'s running tasks among `ids` back unspent and drop its reservations;
    how many running tasks went back."""
    return int(await conn.run_script("release", stamp(now), worker, *ids))


async def extend_leases(
    conn: Connection, worker: str, ids: Sequence[str], now: float, lease: float
) -> set[str]:
    """Renew what `worker` still holds among `ids`; those ids."""
    args = [stamp(now), worker, stamp(now + lease), *ids]
    return {str(i) for i in await conn.run_script("extend_leases", *args)}


async def spoil(
    conn: Connection,
    corrupt: Sequence[tuple[Mapping[str, str], CorruptRow]],
    now: float,
    outcome: str,
    holder: str | None = None,
) -> int:
    """Fail for good the running tasks whose hashes cannot be read; how many were."""
    for fields, error in corrupt:
        error.log_failed(fields.get("id", ""))
    return int(await conn.run_script("spoil", stamp(now), outcome, *spoil_args(corrupt, holder)))
