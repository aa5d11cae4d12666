"""docs/benchmarks.md from the figures `bench.compare` measured: tables, the targets of the
performance issue checked against them, and PNG plots (drawn by `bench/plots.py` in a
virtualenv of its own, so matplotlib is never a dependency of afterward).

Each system ran at two variants, its defaults and one tuned setting: a row of the tables
each. A target holds afterward at its defaults against the faster of each peer's two
variants, and names it. Figures measured before there were variants (no ``variant`` in a
run, one settings string per system) read as one row per system, named as it is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from .figures import has_variants
from .tables import settings_table, store_tables, web_table
from .targets import floors, targets

ROOT = Path(__file__).resolve().parents[1]
PLOT_VENV = ROOT / ".bench" / "venvs" / "plot"


def write_report(data: dict[str, Any], out: Path, *, plots: bool = True) -> None:
    """Write `out` (markdown) and, with `plots`, its PNG plots beside it."""
    meta = data["meta"]
    drawn = draw_plots(out.with_suffix(".json"), out.parent) if plots else []
    lines = [
        "# Benchmarks: afterward beside its peers",
        "",
        f"Measured {meta['date']} on {meta['machine']}, Python {meta['python']}, local "
        "PostgreSQL 15 and Redis 7 on loopback, by one command:",
        "",
        f"    {meta['command']}",
        "",
        "Every system ran the same no-op task (it appends one line to a ledger file), on the "
        "same servers, rounds interleaved; cells show the median round and the min-max. "
        f"Sizes: {meta['sizes']}. Throughput is timed from the first task finished to the "
        "last (worker start-up left out); a slow system is timed on what it ran in 30 s.",
        "",
        "## Targets",
        "",
        *_targets_note(data),
        *targets(data),
        "",
        "## Floors and ceilings: what this machine allows",
        "",
        *floors(data),
        "",
        *_analysis(),
        "## Results by store",
        "",
        *store_tables(data),
    ]
    if any(r["system"] == "web" for r in data["runs"]):
        lines += [
            "## The lesson's `/tasks` endpoint (one sync + one async task), uvicorn, 32 "
            "connections (`wrk`)",
            "",
            *web_table(data),
            "",
        ]
    if drawn:
        lines += ["## Plots", "", *[f"![{p.stem}]({p.name})" for p in drawn], ""]
    lines += ["## Versions and settings", "", *settings_table(data), ""]
    if meta["failures"]:
        lines += ["## Runs that failed", ""]
        lines += [f"- `{key}`: {why}" for key, why in meta["failures"].items()]
        lines.append("")
    out.write_text("\n".join(lines))


def _targets_note(data: dict[str, Any]) -> list[str]:
    if not has_variants(data):
        return []
    return [
        "afterward is held at its defaults; each peer at the faster of its two variants, its "
        "defaults or its tuned setting, named in the cell. The endpoint's peers run at their "
        "defaults: their tuned settings are their workers', and the endpoint only enqueues.",
        "",
    ]


def _analysis() -> list[str]:
    """The hand-written reading of the figures (bench/analysis.md), if there is one."""
    path = ROOT / "bench" / "analysis.md"
    return [path.read_text().rstrip(), ""] if path.exists() else []


def draw_plots(figures: Path, folder: Path) -> list[Path]:
    """PNG plots, drawn by bench/plots.py with matplotlib in its own virtualenv."""
    python = PLOT_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PLOT_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "matplotlib"], check=True)
    done = subprocess.run(
        [str(python), str(ROOT / "bench" / "plots.py"), str(figures), str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        print(f"plots failed: {done.stderr.strip()[-300:]}", file=sys.stderr)
        return []
    return [Path(line) for line in done.stdout.split()]


def main() -> None:
    """Rewrite the report from saved figures: ``python -m bench.report docs/benchmarks.json``."""
    figures = Path(sys.argv[1])
    write_report(json.loads(figures.read_text()), figures.with_suffix(".md"))


if __name__ == "__main__":
    main()
