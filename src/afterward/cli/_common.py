"""What the subcommands share: the store option, running a coroutine, error display."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from ..config import Settings
from ..errors import AfterwardError
from ..stores import Store, store_from_url

__all__ = ["UrlOption", "format_time", "stderr", "stdout", "with_store"]

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


def with_store(url: str | None, action: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store at `url`, run `action`, close it; show afterward errors plainly."""

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
        stderr().print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None


def format_time(timestamp: float | None) -> str:
    """A stored time, local and readable; '-' when there is none."""
    if timestamp is None:
        return "-"
    return dt.datetime.fromtimestamp(timestamp).isoformat(sep=" ", timespec="seconds")
