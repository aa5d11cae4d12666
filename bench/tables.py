"""The report's tables of figures: one per kind of store, the web endpoint's, and each
system's version and settings."""

from __future__ import annotations

from typing import Any

from .figures import STORE_NAMES, cell, figure_values, has_variants, row_label, system_of
from .web import LABELS as WEB_LABELS


def store_tables(data: dict[str, Any]) -> list[str]:
    """One table per kind of store: every system's figures on it."""
    rate = figure_values(data, "rate")
    p50, p99 = figure_values(data, "p50_ms"), figure_values(data, "p99_ms")
    lines: list[str] = []
    for store, title in STORE_NAMES.items():
        systems = sorted(
            {s for s, st, _ in rate if st == store} | {s for s, st, _ in p50 if st == store}
        )
        systems = [s for s in systems if s != "web"]  # the web endpoint has its own table
        if not systems:
            continue
        # afterward first, then the peers by name, each at its defaults then tuned
        systems.sort(key=lambda s: (system_of(s) != "afterward", system_of(s), s != system_of(s)))
        lines += [
            f"### {title}",
            "",
            "| system | tasks/s, 1 worker process | tasks/s, 2 processes "
            "| enqueue/s, one at a time | enqueue/s, bulk | enqueue→start p50 ms | p99 ms |",
            "|---|---|---|---|---|---|---|",
        ]
        for s in systems:
            label = row_label(data, s)
            if system_of(s) == "afterward":
                label = label.replace("afterward", "**afterward**", 1)
            lines.append(
                f"| {label} "
                f"| {cell(rate.get((s, store, 'throughput_1')))} "
                f"| {cell(rate.get((s, store, 'throughput_2')))} "
                f"| {cell(rate.get((s, store, 'enqueue_one')))} "
                f"| {cell(rate.get((s, store, 'enqueue_bulk')))} "
                f"| {cell(p50.get((s, store, 'latency')), 1)} "
                f"| {cell(p99.get((s, store, 'latency')), 1)} |"
            )
        lines.append("")
    if lines and has_variants(data):
        lines += [
            "Each system ran at its defaults and at one tuned setting (both stated under "
            "[Versions and settings](#versions-and-settings)); the number of worker processes "
            "is the column's in both. A tuned row has no enqueue figures where its setting is "
            "the worker's alone: its producer is the defaults' one.",
            "",
        ]
    return lines


def web_table(data: dict[str, Any]) -> list[str]:
    """The lesson's endpoint under uvicorn + wrk, 32 connections."""
    rps, p50, p99 = (
        figure_values(data, "rps"),
        figure_values(data, "p50_ms"),
        figure_values(data, "p99_ms"),
    )
    done = figure_values(data, "tasks_done_share")
    cpu, busy = figure_values(data, "cpu_ms_per_request"), figure_values(data, "cores_busy")
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
                f"| {label} | {cell(rps[key])} | {cell(p50.get(key), 1)} "
                f"| {cell(p99.get(key), 1)} | {cell(cpu.get(key), 3)} "
                f"| {cell(busy.get(key), 2)} | {share} |"
            )
    return lines


def settings_table(data: dict[str, Any]) -> list[str]:
    """Each system's version and the settings of its variants."""
    meta = data["meta"]
    settings = meta.get("settings", {})
    if not has_variants(data):
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
