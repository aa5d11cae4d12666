"""Draw the benchmark plots from benchmarks.json (run by bench/report.py in a virtualenv
with matplotlib; prints the paths of the PNG files it wrote).

    python bench/plots.py docs/benchmarks.json docs/
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STORES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "redis": "Redis"}
OURS, THEIRS = "#d1495b", "#8d99ae"


def _row(run: dict[str, Any]) -> str:
    """The bar a run belongs to: its system at its defaults (or in figures from before there
    were variants), ``system (tuned)`` at its tuned setting."""
    variant = run.get("variant", "defaults")
    return run["system"] if variant == "defaults" else f"{run['system']} ({variant})"


def _median(
    runs: list[dict[str, Any]], system: str, store: str, workload: str, key: str
) -> float | None:
    values = [
        r["figures"][key]
        for r in runs
        if (_row(r), r["store"], r["workload"]) == (system, store, workload) and key in r["figures"]
    ]
    return statistics.median(values) if values else None


def _bars(ax: Any, labels: list[str], values: list[float], title: str, unit: str) -> None:
    colours = [OURS if label.startswith("afterward") else THEIRS for label in labels]
    ax.barh(labels, values, color=colours)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(unit)
    ax.invert_yaxis()
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:,.0f}", va="center", fontsize=8)


def throughput(runs: list[dict[str, Any]], folder: Path) -> Path | None:
    panels = []
    for store, title in STORES.items():
        systems = sorted({_row(r) for r in runs if r["store"] == store and r["system"] != "web"})
        measured = [(s, _median(runs, s, store, "throughput_1", "rate")) for s in systems]
        pairs = [(s, v) for s, v in measured if v is not None]
        if pairs:
            pairs.sort(key=lambda p: -p[1])
            panels.append((title, pairs))
    if not panels:
        return None
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(7, 1.2 + 0.45 * sum(len(p) for _, p in panels))
    )
    for ax, (title, pairs) in zip(axes if len(panels) > 1 else [axes], panels, strict=True):
        _bars(
            ax,
            [s for s, _ in pairs],
            [v for _, v in pairs],
            f"{title}: no-op tasks/s, 1 worker process",
            "tasks/s",
        )
    fig.tight_layout()
    path = folder / "bench-throughput.png"
    fig.savefig(path, dpi=110)
    return path


def latency(runs: list[dict[str, Any]], folder: Path) -> Path | None:
    rows = []
    for r in runs:
        if r["workload"] == "latency":
            rows.append((f"{_row(r)}, {STORES[r['store']]}", _row(r), r["store"]))
    rows = sorted(set(rows))
    if not rows:
        return None
    labels = [label for label, _, _ in rows]
    p50 = [_median(runs, s, st, "latency", "p50_ms") or 0 for _, s, st in rows]
    p99 = [_median(runs, s, st, "latency", "p99_ms") or 0 for _, s, st in rows]
    order = sorted(range(len(rows)), key=lambda i: p50[i])
    fig, ax = plt.subplots(figsize=(7, 1 + 0.35 * len(rows)))
    ys = range(len(order))
    ax.barh(
        [y + 0.2 for y in ys], [p99[i] for i in order], height=0.4, color="#edae49", label="p99"
    )
    ax.barh(
        [y - 0.2 for y in ys],
        [p50[i] for i in order],
        height=0.4,
        color=[OURS if rows[i][1].startswith("afterward") else THEIRS for i in order],
        label="p50",
    )
    ax.set_yticks(list(ys), [labels[i] for i in order])
    ax.invert_yaxis()
    ax.set_xscale("log")  # from about a millisecond to half a second
    ax.set_xlabel("ms from enqueue to the task starting (idle worker), log scale")
    ax.legend()
    fig.tight_layout()
    path = folder / "bench-latency.png"
    fig.savefig(path, dpi=110)
    return path


def web(runs: list[dict[str, Any]], folder: Path) -> Path | None:
    names = {
        "none": "no tasks",
        "fastapi": "FastAPI BackgroundTasks",
        "sqlite": "afterward SQLite",
        "postgres": "afterward PostgreSQL",
        "redis": "afterward Redis",
        "saq": "SAQ (Redis)",
        "arq": "arq (Redis)",
        "pgqueuer": "PgQueuer (PostgreSQL)",
        "procrastinate": "Procrastinate (PostgreSQL)",
        "rq": "RQ (Redis)",
    }
    variants = list(names)
    present = [v for v in variants if _median(runs, "web", v, "web", "rps") is not None]
    if not present:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 0.8 + 0.4 * len(present)))
    labels = [names[v] for v in present]
    _bars(
        left,
        labels,
        [_median(runs, "web", v, "web", "rps") or 0 for v in present],
        "req/s",
        "req/s",
    )
    _bars(
        right,
        labels,
        [_median(runs, "web", v, "web", "p99_ms") or 0 for v in present],
        "p99 latency",
        "ms",
    )
    right.set_yticks([])
    fig.suptitle("The lesson's /tasks endpoint, uvicorn, 32 connections", fontsize=10)
    fig.tight_layout()
    path = folder / "bench-web.png"
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    data = json.loads(Path(sys.argv[1]).read_text())
    folder = Path(sys.argv[2])
    for draw in (throughput, latency, web):
        path = draw(data["runs"], folder)
        if path is not None:
            print(path)


if __name__ == "__main__":
    main()
