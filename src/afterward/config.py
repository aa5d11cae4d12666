"""Settings: one keyword-only value object, defaults as named constants, `from_env()`."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Literal

from .calls.serialization import DEFAULT_MAX_PAYLOAD
from .errors import ConfigurationError, InvalidOption
from .options import check_queue
from .retry import RetryPolicy

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_LEASE",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_QUEUE",
    "DEFAULT_URL",
    "Execution",
    "Settings",
]

Execution = Literal["in_app", "workers"]

DEFAULT_URL = "sqlite:///afterward.db"
"""A SQLite file in the working directory."""
DEFAULT_QUEUE = "default"
DEFAULT_LEASE = 30.0
"""Seconds a worker holds a task without renewing; renewed every third of it."""
DEFAULT_CONCURRENCY = 8
"""Tasks one runner (one process) runs at once."""
DEFAULT_GRACE_PERIOD = 30.0
"""Seconds a stopping worker lets running tasks finish before handing them back."""
DEFAULT_POLL_INTERVAL = 0.5
"""Seconds an idle runner waits before looking for due work again (wake-ups come sooner)."""

_ENV = {
    "AFTERWARD_URL": "url",
    "AFTERWARD_EXECUTION": "execution",
    "AFTERWARD_QUEUE": "default_queue",
    "AFTERWARD_LEASE": "lease",
    "AFTERWARD_CONCURRENCY": "concurrency",
    "AFTERWARD_STRICT": "strict",
    "AFTERWARD_RAISE_TASK_ERRORS": "raise_task_errors",
}
_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True, kw_only=True)
class Settings:
    """How an application uses afterward.

    `execution="in_app"` (the default) runs a request's tasks in the web process right
    after its response, as FastAPI does; `"workers"` only enqueues them, for
    `afterward worker` processes to run.

    `strict=True` refuses, inside the request, every `add_task` call that could not be
    stored (recommended in production); by default such a call runs in the web process
    after the response, as FastAPI runs it, and is logged once per call site.
    `raise_task_errors=True` makes a request's task that fails in this process raise
    through the ASGI app (and so through `TestClient`), as FastAPI's background tasks do.
    """

    url: str = DEFAULT_URL
    execution: Execution = "in_app"
    default_queue: str = DEFAULT_QUEUE
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    lease: float = DEFAULT_LEASE
    concurrency: int = DEFAULT_CONCURRENCY
    grace_period: float = DEFAULT_GRACE_PERIOD
    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_payload: int = DEFAULT_MAX_PAYLOAD
    strict: bool = False
    raise_task_errors: bool = False

    def __post_init__(self) -> None:
        if self.execution not in ("in_app", "workers"):
            raise ConfigurationError(
                f"execution must be 'in_app' or 'workers', not {self.execution!r}"
            )
        for name in ("lease", "poll_interval", "grace_period"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ConfigurationError(
                    f"{name} must be a finite number of seconds (lease must be > 0), not {value!r}"
                )
        if self.lease <= 0 or self.poll_interval <= 0:
            raise ConfigurationError("lease and poll_interval must be > 0 seconds")
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            raise ConfigurationError(
                f"concurrency must be > 0 (a whole number), not {self.concurrency!r}"
            )
        check_queue(self.default_queue)
        if not isinstance(self.retry, RetryPolicy):
            raise InvalidOption(f"retry must be a RetryPolicy, not {type(self.retry).__name__}")
        if type(self.max_payload) is not int or self.max_payload < 1:
            raise InvalidOption("max_payload must be a whole number of bytes above 0")
        for name in ("strict", "raise_task_errors"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidOption(f"{name} must be True or False, not {getattr(self, name)!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, /, **overrides: object) -> Settings:
        """Settings from `AFTERWARD_*` variables, then `overrides` given in code."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for var, name in _ENV.items():
            if var in env:
                values[name] = _parse(var, name, env[var])
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigurationError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values.update(overrides)
        return replace(cls(), **values)  # type: ignore[arg-type]


def _parse(var: str, name: str, raw: str) -> object:
    if name == "lease":
        return _number(var, raw, float)
    if name == "concurrency":
        return _number(var, raw, int)
    if name in ("strict", "raise_task_errors"):
        return _flag(var, raw)
    return raw


def _flag(var: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ConfigurationError(f"{var}={raw!r} is not a yes/no value: use 1 or 0")


def _number(var: str, raw: str, kind: type[float] | type[int]) -> float | int:
    try:
        return kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigurationError(f"{var}={raw!r} is not {what}") from None
