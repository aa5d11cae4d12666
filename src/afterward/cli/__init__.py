"""The `afterward` command: run workers, inspect and administer tasks.

Each subcommand lives in its own module; this one only assembles them.
"""

from __future__ import annotations

import inspect as _inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape

from .._version import __version__
from . import admin, inspect, worker

__all__ = ["app", "main"]

app = typer.Typer(
    name="afterward",
    help="Durable background tasks for FastAPI: run workers, inspect and manage tasks.",
    no_args_is_help=True,
    add_completion=False,
    # A traceback that gets through must not print every frame's variables: they hold
    # store URLs with passwords and task arguments.
    pretty_exceptions_show_locals=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"afterward {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print afterward's version and exit.",
        ),
    ] = False,
) -> None:
    """Durable background tasks for FastAPI: run workers, inspect and manage tasks."""


def _command(name: str, function: Callable[..., Any]) -> None:
    """Add `function` as the subcommand `name`, its docstring as help: text, never Rich
    markup (``[redacted]`` and JSON shapes stay as written)."""
    app.command(name, help=escape(_inspect.getdoc(function) or ""))(function)


_command("worker", worker.worker)
_command("status", inspect.status)
_command("ls", inspect.ls)
_command("show", inspect.show)
_command("retry", admin.retry)
_command("cancel", admin.cancel)
_command("purge", admin.purge)


def main() -> None:
    """Entry point of the `afterward` console script."""
    app()
