"""Load named SQL blocks from a store package's ``sql/`` folder once, by name: a package is
named by its dotted name (``afterward.stores.sqlite``, ``afterward.stores.postgres``).

A block in ``queries.sql`` starts with ``-- name: <name>`` and a line describing it;
everything up to the next header is the query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import LiteralString

__all__ = ["Migration", "Queries", "load_migrations", "load_queries", "load_schema"]

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


class Queries:
    """A dialect's named queries: ``queries["acquire_due"]``."""

    def __init__(self, blocks: dict[str, LiteralString]) -> None:
        self._blocks = blocks

    def __getitem__(self, name: str) -> LiteralString:
        return self._blocks[name]

    def names(self) -> list[str]:
        """Every query name, sorted."""
        return sorted(self._blocks)


@dataclass(frozen=True)
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    sql: LiteralString


def _folder(package: str) -> resources.abc.Traversable:
    return resources.files(package).joinpath("sql")


def load_queries(package: str) -> Queries:
    """Parse ``sql/queries.sql`` of the store package `package` (its dotted name, e.g.
    ``afterward.stores.postgres``) into named blocks."""
    text = _folder(package).joinpath("queries.sql").read_text(encoding="utf-8")
    parts = _HEADER.split(text)
    blocks: dict[str, LiteralString] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [ln for ln in body.strip().splitlines() if not ln.startswith("--")]
        blocks[name] = "\n".join(lines).strip()
    return Queries(blocks)


def load_schema(package: str) -> LiteralString:
    """The full, latest schema of a dialect: ``sql/schema.sql`` of the store package."""
    return _folder(package).joinpath("schema.sql").read_text("utf-8")


def load_migrations(package: str) -> list[Migration]:
    """The dialect's migrations, ``sql/migrations/`` of the store package, in version order
    (file names start with the version)."""
    found = []
    for entry in _folder(package).joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            sql = entry.read_text(encoding="utf-8")
            found.append(Migration(version, entry.name, sql))
    return sorted(found, key=lambda m: m.version)
