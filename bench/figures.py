"""The figures of a run as the report reads them: by row (a system at one variant), store
and workload, and a cell as the median round and the min-max."""

from __future__ import annotations

import statistics
from typing import Any

STORE_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "redis": "Redis"}
Key = tuple[str, str, str]
"""(row, store, workload); a row is a system at its defaults, by its name, or at its tuned
setting, ``name:tuned`` (see `_row`)."""


def _row(run: dict[str, Any]) -> str:
    """The row a run's figures belong to: the system's name at its defaults (and in figures
    from before there were variants), ``name:tuned`` at its tuned setting."""
    variant = run.get("variant", "defaults")
    return run["system"] if variant == "defaults" else f"{run['system']}:{variant}"


def system_of(row: str) -> str:
    """The system of a row."""
    return row.partition(":")[0]


def has_variants(data: dict[str, Any]) -> bool:
    """Whether the figures come with two variants per system (and their settings)."""
    settings = data["meta"].get("settings", {})
    return any(isinstance(stated, dict) for stated in settings.values())


def row_label(data: dict[str, Any], row: str) -> str:
    """A row as the report names it: ``pgqueuer (defaults)``, ``pgqueuer (tuned:
    batch_size=100)``; figures from before there were variants, by the system's name."""
    name, _, variant = row.partition(":")
    stated = data["meta"].get("settings", {}).get(name)
    if not isinstance(stated, dict):
        return row
    return f"{name} (tuned: {stated['tuned']})" if variant else f"{name} (defaults)"


def figure_values(data: dict[str, Any], figure: str) -> dict[Key, list[float]]:
    out: dict[Key, list[float]] = {}
    for r in data["runs"]:
        if figure in r["figures"]:
            key = (_row(r), r["store"], r["workload"])
            out.setdefault(key, []).append(r["figures"][figure])
    return out


def cell(values: list[float] | None, digits: int = 0) -> str:
    if not values:
        return "-"
    mid = statistics.median(values)
    if len(values) == 1:
        return f"{mid:,.{digits}f}"
    return f"{mid:,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def median_of(table: dict[Key, list[float]], key: Key) -> float | None:
    values = table.get(key)
    return statistics.median(values) if values else None
