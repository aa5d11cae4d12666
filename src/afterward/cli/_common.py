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
from ..errors import AfterwardError
from ..jobs import describe
from ..stores import Store, store_from_url
from .text import FULL_LIMIT, shown

__all__ = ["UrlOption", "fail", "format_time", "stderr", "stdout", "with_store"]

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


def fail(message: object) -> NoReturn:
    """Print ``error: <message>`` (shown as text, never markup) and exit with code 1."""
    line = shown(message, limit=FULL_LIMIT, lines=True)
    stderr().print(Text.assemble(("error:", "bold red"), " ", line))
    raise typer.Exit(1)


def with_store(url: str | None, action: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store at `url`, run `action`, close it; show errors plainly.

    Any other exception too ends the command with one line, not a traceback: a row this
    version cannot read (a state or a value no afterward writes) makes the store raise
    what parsing it raised.
    """

    async def run() -> T:
        store = store_from_url(url or Settings().url)
        await store.open()
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
