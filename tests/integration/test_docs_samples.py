"""Every Python sample in the README and the docs runs as it is written.

A page's ```python blocks run in order, in one module of their own (so that workers can
find the functions they define by name), in an empty working directory with a fresh
SQLite store; top-level `await` is allowed. A block preceded by a line
``<!-- not run: <reason> -->`` is skipped: a peer's API shown for comparison, or code that
needs the reader's own database.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from afterward import Afterward

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_NOT_RUN = re.compile(r"^<!-- not run: .+ -->$")


def blocks(page: Path) -> Iterator[tuple[int, str]]:
    """(line number, code) of each ```python block of `page` that is to run."""
    lines = page.read_text().splitlines()
    previous, i = "", 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i + 1
            end = lines.index("```", start)
            if not _NOT_RUN.match(previous):
                yield start + 1, "\n".join(lines[start:end])
            i, previous = end + 1, ""
            continue
        if lines[i].strip():
            previous = lines[i].strip()
        i += 1


RUNNABLE = [page for page in PAGES if any(blocks(page))]


@pytest.mark.parametrize("page", RUNNABLE, ids=[str(p.relative_to(ROOT)) for p in RUNNABLE])
def test_every_python_sample_runs(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AFTERWARD_URL", f"sqlite:///{tmp_path / 'afterward.db'}")
    name = "docs_sample_" + re.sub(r"\W", "_", str(page.relative_to(ROOT)))
    module = ModuleType(name)
    sys.modules[name] = module
    logger = logging.getLogger("afterward")
    level, handlers = logger.level, list(logger.handlers)  # the logging guide changes them
    try:
        for line, code in blocks(page):
            _run(code, f"{page.relative_to(ROOT)}:{line}", vars(module))
    finally:
        _close(vars(module))
        del sys.modules[name]
        logger.setLevel(level)
        logger.handlers[:] = handlers


def _run(code: str, where: str, namespace: dict[str, object]) -> None:
    # dont_inherit: the samples run without this file's `from __future__` imports
    compiled = compile(code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    result = eval(compiled, namespace)  # the docs' own code, as a reader would run it
    if compiled.co_flags & inspect.CO_COROUTINE:
        asyncio.run(result)


def _close(namespace: dict[str, object]) -> None:
    """Stop what the samples started (embedded workers, open stores)."""
    for value in list(namespace.values()):
        if isinstance(value, Afterward):
            asyncio.run(value.aclose())
