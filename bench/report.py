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
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from .web import LABELS as WEB_LABELS
from .web import PEERS as PEER_ENDPOINTS

ROOT = Path(__file__).resolve().parents[1]
PLOT_VENV = ROOT / ".bench" / "venvs" / "plot"
STORE_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "redis": "Redis"}
Key = tuple[str, str, str]
"""(row, store, workload); a row is a system at its defaults, by its name, or at its tuned
setting, ``name:tuned`` (see `_row`)."""


def _row(run: dict[str, Any]) -> str:
    """The row a run's figures belong to: the system's name at its defaults (and in figures
    from before there were variants), ``name:tuned`` at its tuned setting."""
    variant = run.get("variant", "defaults")
    return run["system"] if variant == "defaults" else f"{run['system']}:{variant}"


def _name(row: str) -> str:
    """The system of a row."""
    return row.partition(":")[0]


def _has_variants(data: dict[str, Any]) -> bool:
    """Whether the figures come with two variants per system (and their settings)."""
    settings = data["meta"].get("settings", {})
    return any(isinstance(stated, dict) for stated in settings.values())


def _label(data: dict[str, Any], row: str) -> str:
    """A row as the report names it: ``pgqueuer (defaults)``, ``pgqueuer (tuned:
    batch_size=100)``; figures from before there were variants, by the system's name."""
    name, _, variant = row.partition(":")
    stated = data["meta"].get("settings", {}).get(name)
    if not isinstance(stated, dict):
        return row
    return f"{name} (tuned: {stated['tuned']})" if variant else f"{name} (defaults)"


def _values(data: dict[str, Any], figure: str) -> dict[Key, list[float]]:
    out: dict[Key, list[float]] = {}
    for r in data["runs"]:
        if figure in r["figures"]:
            key = (_row(r), r["store"], r["workload"])
            out.setdefault(key, []).append(r["figures"][figure])
    return out


def _cell(values: list[float] | None, digits: int = 0) -> str:
    if not values:
        return "-"
    mid = statistics.median(values)
    if len(values) == 1:
        return f"{mid:,.{digits}f}"
    return f"{mid:,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def _median(table: dict[Key, list[float]], key: Key) -> float | None:
    values = table.get(key)
    return statistics.median(values) if values else None


def store_tables(data: dict[str, Any]) -> list[str]:
    """One table per kind of store: every system's figures on it."""
    rate = _values(data, "rate")
    p50, p99 = _values(data, "p50_ms"), _values(data, "p99_ms")
    lines: list[str] = []
    for store, title in STORE_NAMES.items():
        systems = sorted(
            {s for s, st, _ in rate if st == store} | {s for s, st, _ in p50 if st == store}
        )
        systems = [s for s in systems if s != "web"]  # the web endpoint has its own table
        if not systems:
            continue
        # afterward first, then the peers by name, each at its defaults then tuned
        systems.sort(key=lambda s: (_name(s) != "afterward", _name(s), s != _name(s)))
        lines += [
            f"### {title}",
            "",
            "| system | tasks/s, 1 worker process | tasks/s, 2 processes "
            "| enqueue/s, one at a time | enqueue/s, bulk | enqueue→start p50 ms | p99 ms |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in systems:
            label = _label(data, s)
            if _name(s) == "afterward":
                label = label.replace("afterward", "**afterward**", 1)
            lines.append(
                f"| {label} "
                f"| {_cell(rate.get((s, store, 'throughput_1')))} "
                f"| {_cell(rate.get((s, store, 'throughput_2')))} "
                f"| {_cell(rate.get((s, store, 'enqueue_one')))} "
                f"| {_cell(rate.get((s, store, 'enqueue_bulk')))} "
                f"| {_cell(p50.get((s, store, 'latency')), 1)} "
                f"| {_cell(p99.get((s, store, 'latency')), 1)} |"
            )
        lines.append("")
    if lines and _has_variants(data):
        lines += [
            "Each system ran at its defaults and at one tuned setting (both stated under "
            "[Versions and settings](#versions-and-settings)); the number of worker processes "
            "is the column's in both. A tuned row has no enqueue figures where its setting is "
            "the worker's alone: its producer is the defaults' one.",
            "",
        ]
    return lines


def _fastest_peer(
    table: dict[Key, list[float]], store: str, workload: str
) -> tuple[str, float] | None:
    """The peer row (any variant) with the highest median, and that median."""
    best: tuple[str, float] | None = None
    for (s, st, w), values in table.items():
        if _name(s) != "afterward" and st == store and w == workload:
            mid = statistics.median(values)
            if best is None or mid > best[1]:
                best = (s, mid)
    return best


def targets(data: dict[str, Any]) -> list[str]:
    """Each target of the performance issue: met or not, by how much."""
    rate = _values(data, "rate")
    p50, p99 = _values(data, "p50_ms"), _values(data, "p99_ms")
    rows: list[str] = ["| target | measured | met |", "|---|---|---|"]

    def row(target: str, measured: str, ok: bool | None) -> None:
        rows.append(f"| {target} | {measured} | {'yes' if ok else 'no' if ok is False else '-'} |")

    versus_peers = (
        ("throughput_1", "tasks/s, 1 worker process"),
        ("enqueue_one", "enqueue/s one at a time"),
        ("enqueue_bulk", "enqueue/s bulk"),
    )
    for store, title in STORE_NAMES.items():
        for workload, label in versus_peers:
            ours = _median(rate, ("afterward", store, workload))
            peer = _fastest_peer(rate, store, workload)
            if ours is not None and peer is not None:
                ratio = ours / peer[1]
                row(
                    f"{label}, {title}: ≥ 2x the fastest peer",
                    f"{ours:,.0f} vs {_label(data, peer[0])} {peer[1]:,.0f}: {ratio:.2f}x",
                    ratio >= 2,
                )
        one = _median(rate, ("afterward", store, "throughput_1"))
        two = _median(rate, ("afterward", store, "throughput_2"))
        if one and two:
            row(f"2 processes ≥ 1.8x one, {title}", f"{two / one:.2f}x", two / one >= 1.8)
        lat50 = _median(p50, ("afterward", store, "latency"))
        lat99 = _median(p99, ("afterward", store, "latency"))
        if lat50 is not None and lat99 is not None:
            limit50, limit99 = (3.0, 10.0) if store == "sqlite" else (1.0, 3.0)
            row(
                f"enqueue→start, idle worker, {title}: p50 ≤ {limit50:g} ms, p99 ≤ {limit99:g} ms",
                f"p50 {lat50:.1f} ms, p99 {lat99:.1f} ms",
                lat50 <= limit50 and lat99 <= limit99,
            )
    web = _values(data, "rps")
    fastapi = _median(web, ("web", "fastapi", "web"))
    ours = _median(web, ("web", "sqlite", "web"))
    if fastapi and ours:
        web99 = _values(data, "p99_ms")
        theirs99 = _median(web99, ("web", "fastapi", "web")) or 0
        ours99 = _median(web99, ("web", "sqlite", "web")) or 0
        row(
            "the lesson's /tasks on SQLite: req/s ≥ FastAPI BackgroundTasks', p99 below it",
            f"{ours:,.0f} vs {fastapi:,.0f} req/s ({ours / fastapi:.2f}x); "
            f"p99 {ours99:.0f} vs {theirs99:.0f} ms",
            ours >= fastapi and ours99 < theirs99,
        )
    fastest = _fastest_endpoint_peer(data)
    if ours and fastest:
        row(
            "the lesson's /tasks on SQLite: ≥ 2x the fastest peer enqueueing in the endpoint",
            f"{ours:,.0f} vs {fastest[0]} {fastest[1]:,.0f} req/s: {ours / fastest[1]:.2f}x",
            ours >= 2 * fastest[1],
        )
    return rows


FLOORS = {
    "sqlite": (
        ("sqlite_commit_wal_us", "sqlite_commit_delete_us"),
        "one-row commit, `synchronous=FULL` (the faster of WAL and the rollback journal)",
    ),
    "postgres": (("postgres_commit_us",), "one-row autocommitted insert through psycopg (async)"),
    "redis": (("redis_round_trip_us",), "one `PING` through redis-py's asyncio client"),
}
"""Per store: the figures of `bench.floors` whose smallest is the floor, and what it is."""
FLOOR_KEY: Key = ("floors", "machine", "floors")
"""Where `bench.compare` files the floors it measured in each round."""


def _enqueue_floor_rows(data: dict[str, Any], store: str, title: str) -> list[str]:
    names, what = FLOORS[store]
    measured = [m for n in names if (m := _median(_values(data, n), FLOOR_KEY)) is not None]
    peer = _fastest_peer(_values(data, "rate"), store, "enqueue_one")
    if not peer or not measured:
        return []
    budget = 1e6 / (2 * peer[1])
    floor = min(measured)
    verdict = (
        f"no: the floor alone is {floor / budget:.1f}x the budget"
        if floor > budget
        else f"yes: {budget - floor:,.0f} µs left for the queue's own work"
    )
    return [
        f"| enqueue one at a time, {title}: ≥ 2x {_label(data, peer[0])} ({peer[1]:,.0f}/s) "
        f"| ≤ {budget:,.0f} µs an enqueue | {what}: {floor:,.0f} µs | {verdict} |"
    ]


def _two_process_rows(data: dict[str, Any], store: str, title: str) -> list[str]:
    one = _median(_values(data, "cores_busy"), ("afterward", store, "throughput_1"))
    if not one:
        return []
    cores = data["meta"]["cores"]
    ceiling = cores / one
    verdict = (
        f"not at this CPU per task: at most {ceiling:.2f}x"
        if ceiling < 1.8
        else f"by CPU: up to {ceiling:.2f}x"
    )
    return [
        f"| 2 worker processes ≥ 1.8x one, {title} | 1.8x the CPU of one run, at the same "
        f"CPU per task | one process's run kept {one:.2f} of {cores} cores busy (servers, "
        f"worker, driver) | {verdict} |"
    ]


def _fastest_endpoint_peer(data: dict[str, Any]) -> tuple[str, float] | None:
    rps = _values(data, "rps")
    peers = [(v, _median(rps, ("web", v, "web"))) for v in PEER_ENDPOINTS]
    return max(((v, r) for v, r in peers if r), key=lambda p: p[1], default=None)


def _endpoint_rows(data: dict[str, Any]) -> list[str]:
    return _parity_row(data) + _twice_the_peer_row(data)


def _parity_row(data: dict[str, Any]) -> list[str]:
    rps = _values(data, "rps")
    fastapi = _median(rps, ("web", "fastapi", "web"))
    floor = _median(rps, ("web", "floor-commit", "web"))
    if not fastapi or not floor:
        return []
    what = "the same endpoint and a durable group commit of its two tasks, none run, by hand"
    return _reach_row(
        "the lesson's /tasks on SQLite: ≥ FastAPI's BackgroundTasks",
        fastapi,
        f"{what} (`bench/web_floors.py`)",
        floor,
    )


def _twice_the_peer_row(data: dict[str, Any]) -> list[str]:
    bare = _median(_values(data, "rps"), ("web", "none", "web"))
    fastest = _fastest_endpoint_peer(data)
    if not bare or not fastest:
        return []
    return _reach_row(
        f"the lesson's /tasks on SQLite: ≥ 2x {fastest[0]} ({fastest[1]:,.0f} req/s)",
        2 * fastest[1],
        "the same endpoint with no tasks at all",
        bare,
    )


def _reach_row(target: str, need: float, ceiling: str, measured: float) -> list[str]:
    """A Floors row for an endpoint target: the req/s it needs against the req/s of a
    `ceiling` measured in the same run, which no version of the endpoint can pass."""
    verdict = f"no: {measured / need:.2f}x of it" if measured < need else "yes"
    return [f"| {target} | {need:,.0f} req/s | {ceiling}: {measured:,.0f} req/s | {verdict} |"]


def floors(data: dict[str, Any]) -> list[str]:
    """The targets that a floor or a ceiling measured in this run puts out of reach, or not.

    Floors hold whatever the code does; a two-process ceiling holds at the CPU per task
    this run measured, and rises if that CPU falls.
    """
    rows = [
        row
        for store, title in STORE_NAMES.items()
        for row in (
            *_enqueue_floor_rows(data, store, title),
            *_two_process_rows(data, store, title),
        )
    ] + _endpoint_rows(data)
    if not rows:
        return []
    notes = [
        "",
        "A one-at-a-time enqueue cannot be cheaper than its store's durable write or one "
        "round trip through the product's client (`bench/floors.py`), and no endpoint that "
        "does work serves more requests than the same endpoint doing none: those floors hold "
        "whatever the code does. No durable endpoint serves more than the same endpoint "
        "committing its tasks and running none; that floor is the cheapest of the designs "
        "written by hand for it (`bench/web_floors.py`), not a bound on every design. Two "
        "processes cannot do more than the cores one process left idle allow (the busy share "
        "is read from /proc/stat from the first task to the last), as long as each task "
        "costs the CPU it did: a ceiling of the code as it is.",
    ]
    blocking = _median(_values(data, "redis_blocking_round_trip_us"), FLOOR_KEY)
    if blocking:
        notes[-1] += (
            f" For comparison, one `PING` through redis-py's blocking client took "
            f"{blocking:,.0f} µs; it would stall the event loop."
        )
    return [
        "| target | it needs | floor or ceiling measured in this run | within reach? |",
        "|---|---|---|---|",
        *rows,
        *notes,
    ]


def web_table(data: dict[str, Any]) -> list[str]:
    """The lesson's endpoint under uvicorn + wrk, 32 connections."""
    rps, p50, p99 = _values(data, "rps"), _values(data, "p50_ms"), _values(data, "p99_ms")
    done = _values(data, "tasks_done_share")
    cpu, busy = _values(data, "cpu_ms_per_request"), _values(data, "cores_busy")
    lines = [
        "| variant | req/s | p50 ms | p99 ms | server CPU ms per request | machine cores busy "
        "| tasks run 1 s after the round (lowest round) |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant, label in WEB_LABELS.items():
        key = ("web", variant, "web")
        if key in rps:
            share = f"{min(done[key]):.0%}" if key in done else "-"
            lines.append(
                f"| {label} | {_cell(rps[key])} | {_cell(p50.get(key), 1)} "
                f"| {_cell(p99.get(key), 1)} | {_cell(cpu.get(key), 3)} "
                f"| {_cell(busy.get(key), 2)} | {share} |"
            )
    return lines


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
    if not _has_variants(data):
        return []
    return [
        "afterward is held at its defaults; each peer at the faster of its two variants, its "
        "defaults or its tuned setting, named in the cell. The endpoint's peers run at their "
        "defaults: their tuned settings are their workers', and the endpoint only enqueues.",
        "",
    ]


def settings_table(data: dict[str, Any]) -> list[str]:
    """Each system's version and the settings of its variants."""
    meta = data["meta"]
    settings = meta.get("settings", {})
    if not _has_variants(data):
        return [
            "| system | version | settings |",
            "|---|---|---|",
            *[
                f"| {name} | {version} | {settings.get(name, '')} |"
                for name, version in meta["versions"].items()
            ],
        ]
    lines = [
        "| system | version | defaults: what the harness sets, and the defaults that matter "
        "| tuned: its one setting | why that setting |",
        "|---|---|---|---|---|",
    ]
    for name, version in meta["versions"].items():
        stated = settings.get(name, {})
        lines.append(
            f"| {name} | {version} | {stated.get('defaults', '')} | `{stated.get('tuned', '')}` "
            f"| {stated.get('why', '')} |"
        )
    return lines


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
