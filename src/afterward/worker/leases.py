"""The leases a runner holds: the tasks it runs, takes ahead or has reserved.

One owner, so that renewing (`Runner.renew_leases`), running (`Runner.run_job`) and the
worker loop's hand-backs agree on what is held.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["Leases"]


class Leases:
    """Task id → attempt held (0: reserved, not started)."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}

    def hold(self, job_id: str, attempt: int) -> None:
        """`job_id` is held at `attempt` (renewed until `drop`)."""
        self._held[job_id] = attempt

    def reserve(self, job_id: str) -> None:
        """`job_id` is reserved for this runner, unless it already holds it."""
        self._held.setdefault(job_id, 0)

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
