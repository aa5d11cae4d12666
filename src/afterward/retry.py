"""Retry policy: how many attempts, how long to wait between them, which errors retry.

Pure code: no I/O, no clock. `RetryPolicy.delay()` takes the random source so tests can
pin it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .options import RETRY_NUMBERS, check_option

__all__ = [
    "DEFAULT_BACKOFF_BASE",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_TIME_LIMIT",
    "RetryPolicy",
]

DEFAULT_MAX_ATTEMPTS = 5
"""Attempts before a task is kept as `failed` (the first run counts as one)."""
DEFAULT_BACKOFF_BASE = 1.0
"""Seconds: the cap of the first retry's delay; it doubles after each attempt."""
DEFAULT_BACKOFF_MAX = 300.0
"""Seconds: no retry waits longer than this."""
DEFAULT_TIME_LIMIT = 300.0
"""Seconds one attempt may run before it is failed with `TimeoutError`."""


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """When and how a failed attempt is tried again.

    The delay before retry *n* (n = 1 after the first failure) is drawn uniformly from
    ``[0, min(backoff_max, backoff_base * 2 ** (n - 1))]`` ("full jitter"), so that many
    tasks failing together do not retry together.
    """

    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_max: float = DEFAULT_BACKOFF_MAX
    retry_on: tuple[type[BaseException], ...] = field(default=(Exception,))
    time_limit: float | None = DEFAULT_TIME_LIMIT

    def __post_init__(self) -> None:
        for name in (*RETRY_NUMBERS, "retry_on"):
            check_option(name, getattr(self, name))

    def retries(self, error: BaseException) -> bool:
        """Whether `error` is of a kind this policy retries."""
        return isinstance(error, self.retry_on)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        exponent = min(max(attempt - 1, 0), 64)  # 2**64 s is past any cap; avoids overflow
        cap = min(self.backoff_max, self.backoff_base * 2.0**exponent)
        return (rng or random).uniform(0.0, cap)

    def to_json(self) -> dict[str, Any]:
        """The parts of the policy a store keeps with the task (exceptions stay in code)."""
        return {
            "max_attempts": self.max_attempts,
            "backoff_base": self.backoff_base,
            "backoff_max": self.backoff_max,
            "time_limit": self.time_limit,
        }

    def with_stored(self, stored: dict[str, Any]) -> RetryPolicy:
        """This policy with the numbers stored for one task, keeping `retry_on`."""
        return RetryPolicy(
            max_attempts=int(stored.get("max_attempts", self.max_attempts)),
            backoff_base=float(stored.get("backoff_base", self.backoff_base)),
            backoff_max=float(stored.get("backoff_max", self.backoff_max)),
            time_limit=_optional_float(stored.get("time_limit", self.time_limit)),
            retry_on=self.retry_on,
        )


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def exception_names(kinds: Sequence[type[BaseException]]) -> list[str]:
    """Readable names of exception classes, for docs and the CLI."""
    return [f"{k.__module__}.{k.__qualname__}" for k in kinds]
