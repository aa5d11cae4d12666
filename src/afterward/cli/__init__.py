"""The `afterward` command: run workers, inspect and administer tasks.

Each subcommand lives in its own module; this one only assembles them.
"""

from __future__ import annotations

import typer

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
app.command("worker")(worker.worker)
app.command("status")(inspect.status)
app.command("ls")(inspect.ls)
app.command("show")(inspect.show)
app.command("retry")(admin.retry)
app.command("cancel")(admin.cancel)
app.command("purge")(admin.purge)


def main() -> None:
    """Entry point of the `afterward` console script."""
    app()
