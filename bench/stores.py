"""Fresh, empty stores for a benchmark run, and their removal afterwards."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fresh_url(kind: str, tmp: Path) -> str:
    """A new, empty store of `kind` (a file in `tmp`, a schema, or a key prefix)."""
    name = f"aw_bench_{uuid.uuid4().hex[:8]}"
    if kind == "sqlite":
        return f"sqlite:///{tmp / name}.db"
    if kind == "postgres":
        return f"postgresql://127.0.0.1:5432/test?schema={name}"
    return f"redis://127.0.0.1:6379/0?prefix={name}"


def drop(url: str) -> None:
    """Remove what a run left on a shared server (SQLite files go with their folder)."""
    if url.startswith("sqlite"):
        return
    sys.path.insert(0, str(ROOT))
    from faults.harness import drop_store

    drop_store(url)
