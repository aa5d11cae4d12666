"""The leases a runner holds: the tasks it runs, takes ahead or has reserved.

One owner, so that renewing (`Upkeep`), running (`Runner.run_job`), a request's chain
(`Runner.run_chain`) and the worker loop's hand-backs agree on what is held.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

__all__ = ["Leases"]


class Leases:
    """Task id → attempt held (0: reserved, not started); reservations no chain has
    claimed yet; and the tasks whose outcome is being written."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}
        self._unclaimed: dict[str, float] = {}
        self.settling: set[str] = set()
        """Tasks whose outcome is being written: a renewal that misses them is no loss."""

    def hold(self, job_id: str, attempt: int) -> None:
        """`job_id` is held at `attempt` (renewed until `drop`)."""
        self._held[job_id] = attempt

    def reserve(self, ids: Iterable[str]) -> None:
        """`ids` were reserved for this runner at enqueue: renewed until a chain claims
        them (`claim`), or for one lease (`unclaimed`)."""
        now = time.monotonic()
        for job_id in ids:
            self._held.setdefault(job_id, 0)
            self._unclaimed[job_id] = now

    def claim(self, ids: Iterable[str]) -> None:
        """A chain starts running `ids`."""
        for job_id in ids:
            self._unclaimed.pop(job_id, None)

    def unclaimed(self, for_longer_than: float) -> list[str]:
        """Reservations no chain claimed for `for_longer_than` seconds; no longer noted."""
        cutoff = time.monotonic() - for_longer_than
        stale = [job_id for job_id, at in self._unclaimed.items() if at < cutoff]
        self.claim(stale)
        return stale

    def holds(self, job_id: str) -> bool:
        """Whether `job_id` is still held (its lease was not lost meanwhile)."""
        return job_id in self._held

    def drop(self, ids: Iterable[str]) -> list[str]:
        """Stop holding `ids`; return those that were held at an attempt (not only
        reserved)."""
        return [job_id for job_id in ids if self._held.pop(job_id, None)]

    def ids(self) -> list[str]:
        """Every id held or reserved, for renewal."""
        return list(self._held)

    def __len__(self) -> int:
        return len(self._held)
