"""What the subcommands share: the store option, running a coroutine, error display."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Awaitable, Callable
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from ..config import Settings
from ..errors import AfterwardError, StoreError, TaskNotFound
from ..jobs import Job, JobState, describe
from ..stores import JobFilter, Store, store_from_url
from .text import FULL_LIMIT, shown

__all__ = [
    "AmbiguousId",
    "UrlOption",
    "fail",
    "find_task",
    "format_time",
    "report",
    "stderr",
    "stdout",
    "with_store",
]

T = TypeVar("T")


def stdout() -> Console:
    """A console on standard output, sized to the terminal (or COLUMNS) now."""
    return Console()


def stderr() -> Console:
    """A console on standard error."""
    return Console(stderr=True)


UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="AFTERWARD_URL",
        help="Store URL (sqlite:///afterward.db by default).",
        show_default=False,
    ),
]


def report(message: object) -> None:
    """Print ``error: <message>`` on standard error, shown as text, never markup."""
    line = shown(message, limit=FULL_LIMIT, lines=True)
    stderr().print(Text.assemble(("error:", "bold red"), " ", line), soft_wrap=True)  # whole lines


def fail(message: object) -> NoReturn:
    """`report` the message and exit with code 1."""
    report(message)
    raise typer.Exit(1)


def with_store(url: str | None, action: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store at `url`, run `action`, close it; show errors plainly.

    The store must exist: these commands never create one (`Store.open` with
    ``create=False``). When it cannot be opened the error names the URL tried and how
    to pass another.

    Any other exception too ends the command with one line, not a traceback: a row this
    version cannot read (a state or a value no afterward writes) makes the store raise
    what parsing it raised.
    """

    async def run() -> T:
        store = store_from_url(url or Settings().url)
        try:
            await store.open(create=False)
        except StoreError as exc:
            source = "from --url or AFTERWARD_URL" if url else "the default"
            raise StoreError(
                f"{exc}\ntried {store.url} ({source}); pass the store's URL with "
                "--url URL or AFTERWARD_URL=URL"
            ) from exc
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except AfterwardError as exc:
        fail(exc)
    except Exception as exc:
        fail(f"the store holds what this version of afterward cannot read: {describe(exc)}")


class AmbiguousId(AfterwardError, LookupError):
    """The id prefix given matches more than one task."""


_CANDIDATES = 5
"""How many of the tasks an ambiguous prefix matches are named."""


async def find_task(store: Store, task_id: str) -> Job:
    """The task whose id is `task_id` or, failing that, the one task whose id starts
    with it (with its history either way).

    :raises TaskNotFound: no task has that id or an id starting with it.
    :raises AmbiguousId: several tasks' ids start with it; a few are named.
    """
    try:
        return await store.get(task_id)
    except TaskNotFound:
        if not task_id:
            raise
        found = await store.list(JobFilter(id_prefix=task_id), limit=_CANDIDATES + 1)
        if not found:
            raise
    if len(found) == 1:
        return await store.get(found[0].id)
    named = "\n".join(
        f"  {j.id}  {j.function}  {_state_name(j.state)}" for j in found[:_CANDIDATES]
    )
    more = "\n  …" if len(found) > _CANDIDATES else ""
    raise AmbiguousId(
        f"{task_id!r} starts the ids of several tasks; give more of the id:\n{named}{more}"
    )


def _state_name(state: object) -> str:
    return state.value if isinstance(state, JobState) else str(state)


def format_time(timestamp: float | None) -> str:
    """A stored time, local and readable; '-' when there is none.

    Never raises: a time no calendar date matches (NaN, infinite, past the year 9999 or
    before 1) is shown as the stored number, ``1e+18 (out of range)``.
    """
    if timestamp is None:
        return "-"
    try:
        if not math.isfinite(timestamp):
            raise ValueError(timestamp)
        return dt.datetime.fromtimestamp(timestamp).isoformat(sep=" ", timespec="seconds")
    except (ValueError, TypeError, OverflowError, OSError):
        return f"{timestamp!r} (out of range)"
