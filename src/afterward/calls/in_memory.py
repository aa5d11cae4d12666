"""Calls `add_task` cannot store: run in the web process, in their place in the chain.

Such a call (a method of an object made per request, a mock, a lambda, a value JSON cannot
carry exactly) runs after the response in the process that accepted it, as FastAPI runs
it. It still takes its place in its request's chain through a stand-in row: the task
before it must succeed before it runs, and the task after it waits for it, in this
process or, if this process dies, for ever (shown as failed in the CLI). The stand-in
records where the call came from and why it was not stored, never its arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from ..errors import AfterwardError

__all__ = [
    "CallSite",
    "InMemoryCall",
    "InMemoryTaskLost",
    "not_durable_sites",
    "record_not_durable",
    "stand_in",
    "stand_in_for",
]

log = logging.getLogger("afterward")


class InMemoryTaskLost(AfterwardError):
    """A task that could not be stored was lost with the process that accepted it."""


@dataclass(frozen=True, slots=True)
class CallSite:
    """Where `add_task` was called: shown as ``path/to/file.py:42``."""

    file: str
    line: int

    @classmethod
    def of(cls, frame: FrameType) -> CallSite:
        return cls(frame.f_code.co_filename, frame.f_lineno)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


_NOT_DURABLE: dict[CallSite, str] = {}
"""Every call site seen in this process, by any `Afterward`, whose calls ran in memory."""


def record_not_durable(site: CallSite, reason: str) -> None:
    """Record, for the whole process, that calls made at `site` ran in memory (the first
    reason given is kept)."""
    _NOT_DURABLE.setdefault(site, reason)


def not_durable_sites() -> dict[CallSite, str]:
    """The call sites `record_not_durable` was given in this process, and why, in the
    order first seen."""
    return dict(_NOT_DURABLE)


@dataclass(frozen=True, slots=True)
class InMemoryCall:
    """A call held in memory until its turn comes, after the response."""

    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def stand_in(call: str, site: str, reason: str) -> None:
    """The stored stand-in of a call kept in memory. Only a worker that took it over from
    a process that is gone ever runs it: the call itself is lost, so the rest of its chain
    waits, shown as failed, until an operator retries it (to go on without the call) or
    cancels the rest.

    :raises InMemoryTaskLost: always.
    """
    raise InMemoryTaskLost(
        f"{call} (added at {site}) was not durable ({reason}) and was lost with the process "
        "that accepted it. Retry this task to go on with its chain without it, or cancel "
        "the tasks that wait behind it."
    )


def _skip(call: str, site: str, reason: str) -> None:
    log.warning("going on with the chain without %r (added at %r), lost earlier", call, site)


def stand_in_for(attempt: int) -> Callable[..., None]:
    """What a worker runs for a stand-in at `attempt`: the first run by a worker finds the
    call lost (`stand_in`); a later one comes from an operator's retry, which means "go
    on without it"."""
    return stand_in if attempt <= 1 else _skip
