"""The values a task's options may take, checked where they are written.

`@task`, `RetryPolicy`, `Settings` and every store's `enqueue` refuse an option of the
wrong type or out of range with `InvalidOption`, naming the option: a value a worker
would refuse (or a store could not order) never reaches the store. The ranges are those
every store can hold: PostgreSQL keeps priorities and attempt counts in 32-bit integers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .errors import InvalidOption

__all__ = [
    "MAX_ATTEMPTS_LIMIT",
    "MAX_QUEUE_NAME",
    "PRIORITY_RANGE",
    "RETRY_NUMBERS",
    "StoredOptions",
    "check_attempts",
    "check_option",
    "check_priority",
    "check_queue",
    "check_redact",
    "check_retry_on",
    "check_seconds",
    "check_stored_options",
    "check_time",
    "check_time_limit",
]

INT32 = 2**31 - 1
PRIORITY_RANGE = (-INT32, INT32)
"""Lowest and highest priority (higher runs first)."""
MAX_ATTEMPTS_LIMIT = INT32
"""Most attempts a task may have."""
MAX_QUEUE_NAME = 200
"""Longest queue name, in characters."""


def _whole(name: str, value: object, low: int, high: int) -> int:
    if type(value) is not int:  # bool is an int subclass; a flag is never a count
        raise InvalidOption(f"{name} must be a whole number, not {_shown(value)}")
    if not low <= value <= high:
        raise InvalidOption(f"{name} must be between {low} and {high}, not {_shown(value)}")
    return value


def check_priority(value: object) -> int:
    """A priority: a whole number in `PRIORITY_RANGE`."""
    return _whole("priority", value, *PRIORITY_RANGE)


def check_attempts(value: object, name: str = "max_attempts") -> int:
    """A number of attempts: 1 to `MAX_ATTEMPTS_LIMIT`."""
    return _whole(name, value, 1, MAX_ATTEMPTS_LIMIT)


def check_seconds(name: str, value: object, *, positive: bool = False) -> float:
    """A finite number of seconds, not negative (above zero with `positive`)."""
    if type(value) not in (int, float):
        raise InvalidOption(f"{name} must be a number of seconds, not {_shown(value)}")
    seconds = float(value)  # type: ignore[arg-type]
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        bound = "above 0" if positive else "0 or more"
        raise InvalidOption(f"{name} must be finite and {bound} seconds, not {_shown(value)}")
    return seconds


def check_time(name: str, value: object) -> float:
    """A time in seconds since the epoch: a number, not NaN (an infinite one never comes
    due, which a store can still order)."""
    if type(value) not in (int, float) or math.isnan(value):  # type: ignore[arg-type]
        raise InvalidOption(f"{name} must be a time in seconds, not {_shown(value)}")
    return float(value)  # type: ignore[arg-type]


def check_queue(value: object) -> str:
    """A queue name: printable text of 1 to `MAX_QUEUE_NAME` characters."""
    if not isinstance(value, str) or not value or len(value) > MAX_QUEUE_NAME:
        raise InvalidOption(
            f"queue must be a name of 1 to {MAX_QUEUE_NAME} characters, not {_shown(value)}"
        )
    if not value.isprintable():
        raise InvalidOption(f"queue must be printable text, not {_shown(value)}")
    return value


def check_retry_on(value: object) -> tuple[type[BaseException], ...]:
    """Exception classes that make a failed attempt retry."""
    kinds = (value,) if isinstance(value, type) else value
    if not isinstance(kinds, tuple) or not all(
        isinstance(k, type) and issubclass(k, BaseException) for k in kinds
    ):
        raise InvalidOption(f"retry_on must be a tuple of exception classes, not {_shown(value)}")
    return kinds


def check_redact(value: object) -> tuple[str, ...]:
    """Names of parameters whose values are never shown."""
    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, tuple | list) or not all(
        isinstance(n, str) and n.isidentifier() for n in names
    ):
        raise InvalidOption(f"redact must be a list of parameter names, not {_shown(value)}")
    return tuple(names)


def check_time_limit(value: object) -> float | None:
    """A time limit: a positive, finite number of seconds, or None for none."""
    return None if value is None else check_seconds("time_limit", value, positive=True)


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "queue": check_queue,
    "priority": check_priority,
    "max_attempts": check_attempts,
    "backoff_base": lambda value: check_seconds("backoff_base", value),
    "backoff_max": lambda value: check_seconds("backoff_max", value),
    "time_limit": check_time_limit,
    "retry_on": check_retry_on,
    "redact": check_redact,
}
RETRY_NUMBERS = ("max_attempts", "backoff_base", "backoff_max", "time_limit")
"""The options a task is stored with, read back by the worker's `RetryPolicy`."""


def check_option(name: str, value: object) -> Any:
    """`value` checked as option `name` (one of `TaskOptions`), as it is kept.

    :raises InvalidOption: the value has the wrong type or is out of range.
    """
    return _CHECKS[name](value)


def check_stored_options(options: Mapping[str, Any]) -> None:
    """The options a task is stored with: the retry numbers a worker reads back, and the
    positions and names of its secret arguments."""
    if not isinstance(options, Mapping):
        raise InvalidOption(f"options must be a mapping, not {_shown(options)}")
    for name in RETRY_NUMBERS:
        if name in options:
            check_option(name, options[name])
    redact = options.get("redact")
    if redact is not None and not (
        isinstance(redact, list | tuple)
        and all(type(r) is int or isinstance(r, str) for r in redact)
    ):
        raise InvalidOption(f"redact must list positions and names, not {_shown(redact)}")


def _shown(value: object, limit: int = 60) -> str:
    """`value` as a message quotes it: its repr, cut short (a number over Python's digit
    limit is named by its size, as it has no repr)."""
    try:
        text = repr(value)
    except ValueError:
        digits = int(int.bit_length(value) * math.log10(2))  # type: ignore[arg-type]
        return f"an integer of about {digits} digits"
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


class StoredOptions(Mapping[str, Any]):
    """The options a task is stored with, read-only: checked and encoded once, when made.

    One is made per function (see `Preparer`) and shared by all its tasks, which is safe
    only because nothing can change it; each store writes `text` as it is.
    """

    __slots__ = ("_values", "text")

    def __init__(self, values: Mapping[str, Any] | None = None) -> None:
        """:raises InvalidOption: a value no worker accepts (see `check_stored_options`)."""
        values = {} if values is None else values
        check_stored_options(values)
        # Lists (redact's) kept as tuples: nothing inside can change either.
        kept = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        object.__setattr__(self, "_values", kept)
        object.__setattr__(self, "text", json.dumps(kept))

    _values: dict[str, Any]
    text: str
    """The options as stored (JSON)."""

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"StoredOptions are read-only: {name} cannot be set")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"StoredOptions({self._values!r})"
