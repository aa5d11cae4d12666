"""mkdocs hooks: each CLI page shows the command's own `--help`, rendered at build time, so
the page can never disagree with the command."""

from __future__ import annotations

import re
from typing import Any

from typer.testing import CliRunner

from afterward.cli import app

_MARKER = re.compile(r"^<!-- cli-help: ([a-z]+) -->$", re.MULTILINE)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return _MARKER.sub(lambda m: _help(m.group(1)), markdown)


def _help(command: str) -> str:
    result = CliRunner().invoke(
        app, [command, "--help"], env={"COLUMNS": "90", "NO_COLOR": "1", "TERM": "dumb"}
    )
    if result.exit_code != 0:
        raise RuntimeError(f"afterward {command} --help failed: {result.output}")
    return f"```text\n{result.output.rstrip()}\n```"
