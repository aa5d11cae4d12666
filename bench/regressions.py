"""Whether a rerun of `bench.compare` made afterward worse than an earlier run.

Each of afterward's figures at its defaults is set against the earlier run's: it counts as worse
when its median is worse than the earlier median by more than the earlier min-max spread. The
peers' figures, whose code did not change between the runs, are shown as the machine's drift,
and the endpoint's two controls (the bare endpoint and FastAPI's own `BackgroundTasks`) are
judged by the same rule, in both directions: a control beyond its old spread means the run's
endpoint figures of that kind move with the machine, so afterward's cannot be told from noise
by this rule alone.

    python -m bench.regressions OLD.json NEW.json
    git show 39144f9:docs/benchmarks.json > /tmp/old.json
    python -m bench.regressions /tmp/old.json docs/benchmarks.json
"""

from __future__ import annotations

import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.figures import STORE_NAMES, Key, figure_values

ENDPOINT_FIGURES = (("rps", "req/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"))
"""(figure, label): what a web run measures of one variant of the endpoint."""

AFTERWARD_FIGURES = (
    ("throughput_1", "rate", "tasks/s 1 proc"),
    ("throughput_2", "rate", "tasks/s 2 procs"),
    ("enqueue_one", "rate", "enqueue/s one"),
    ("enqueue_bulk", "rate", "enqueue/s bulk"),
    ("latency", "p50_ms", "latency p50 ms"),
    ("latency", "p99_ms", "latency p99 ms"),
    *(("web", figure, f"endpoint {label}") for figure, label in ENDPOINT_FIGURES),
)
"""(workload, figure, label): the figures of afterward's own rows that the check judges."""

CONTROLS = {"none": "bare endpoint", "fastapi": "FastAPI's own"}
"""The endpoint variants without afterward, by their key in the web runs."""


@dataclass(frozen=True)
class Verdict:
    label: str
    store: str
    old: list[float]
    new: list[float]
    lower_is_better: bool

    @property
    def change(self) -> float:
        """The new median against the old, as a fraction (+0.05 is 5 % higher)."""
        return statistics.median(self.new) / statistics.median(self.old) - 1

    @property
    def moved(self) -> bool:
        """Beyond the old min-max spread from the old median, better or worse."""
        return abs(self._shift) > max(self.old) - min(self.old)

    @property
    def worse(self) -> bool:
        """Worse than the old median by more than the old min-max spread."""
        return self.moved and (self._shift > 0) == self.lower_is_better

    @property
    def _shift(self) -> float:
        return statistics.median(self.new) - statistics.median(self.old)


def _key(store: str, workload: str) -> Key:
    # The endpoint's runs are filed under the system "web", by store; the rest under afterward.
    return ("web", store, "web") if workload == "web" else ("afterward", store, workload)


def _judged(
    old: dict[str, Any], new: dict[str, Any], wanted: list[tuple[Key, str, str, str]]
) -> list[Verdict]:
    """A verdict for each (key, figure, label, store) found in both runs."""
    out: list[Verdict] = []
    values = {f: (figure_values(old, f), figure_values(new, f)) for _, f, _, _ in wanted}
    for key, figure, label, store in wanted:
        before, after = (found.get(key) for found in values[figure])
        if before and after:
            out.append(Verdict(label, store, before, after, figure.endswith("_ms")))
    return out


def verdicts(old: dict[str, Any], new: dict[str, Any]) -> list[Verdict]:
    wanted = [
        (_key(store, workload), figure, label, store)
        for store in STORE_NAMES
        for workload, figure, label in AFTERWARD_FIGURES
    ]
    return _judged(old, new, wanted)


def control_verdicts(old: dict[str, Any], new: dict[str, Any]) -> list[Verdict]:
    """The endpoint figures of the variants without afterward, judged by the same rule."""
    wanted = [
        (("web", variant, "web"), figure, f"{name} {label}", variant)
        for variant, name in CONTROLS.items()
        for figure, label in ENDPOINT_FIGURES
    ]
    return _judged(old, new, wanted)


def peer_drift(old: dict[str, Any], new: dict[str, Any]) -> list[float]:
    """New over old medians of every peer's rate at its defaults (and of the bare and FastAPI
    endpoints): how much faster or slower the machine ran the code that did not change."""
    ratios: list[float] = []
    for figure in ("rate", "rps"):
        before, after = figure_values(old, figure), figure_values(new, figure)
        for key, values in before.items():
            row, store, _ = key
            peer = row != "afterward" and (row != "web" or store not in STORE_NAMES)
            if peer and key in after:
                ratios.append(statistics.median(after[key]) / statistics.median(values))
    return ratios


def _line(v: Verdict) -> str:
    digits = 1 if v.lower_is_better else 0

    def shown(value: float) -> str:
        return f"{value:,.{digits}f}"

    old = f"{shown(statistics.median(v.old))} [{shown(min(v.old))}-{shown(max(v.old))}]"
    new = shown(statistics.median(v.new))
    mark = (
        f"WORSE ({v.change:+.0%})" if v.worse else f"better ({v.change:+.0%})" if v.moved else "no"
    )
    return f"  {v.label:<20} {old:>26} -> {new:<9} {mark}"


def report(old: dict[str, Any], new: dict[str, Any]) -> str:
    lines = ["afterward at defaults: old median [old min-max] -> new median"]
    found = verdicts(old, new)
    for store, name in STORE_NAMES.items():
        lines.append(name)
        lines.extend(_line(v) for v in found if v.store == store)
    worse = [f"{STORE_NAMES[v.store]} {v.label}" for v in found if v.worse]
    lines.append(f"Worse than the old spread ({len(worse)}): {', '.join(worse) or 'none'}")
    controls = control_verdicts(old, new)
    if controls:
        lines.append("Controls (no afterward code; the same rule)")
        lines.extend(_line(v) for v in controls)
        moved = [v.label for v in controls if v.moved]
        if moved:
            lines.append(
                f"Controls beyond their old spread ({len(moved)}): {', '.join(moved)}: in this "
                "run the endpoint's figures of that kind move with the machine; judge "
                "afterward's by alternated pairs (bench/web_pairs.sh)"
            )
    drift = peer_drift(old, new)
    if drift:
        lines.append(
            f"Peers' drift (new/old medians, {len(drift)} figures): median "
            f"{statistics.median(drift):.2f}, range {min(drift):.2f}-{max(drift):.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.regressions OLD.json NEW.json", file=sys.stderr)
        return 2
    old, new = (json.loads(Path(p).read_text()) for p in argv)
    print(report(old, new))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
