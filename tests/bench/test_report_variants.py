"""Each system runs at its defaults and at one tuned setting; the report shows both and holds
afterward against the faster of each peer's two."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bench.systems import SYSTEMS, WORKER_WORKLOADS
from bench.tables import settings_table, store_tables
from bench.targets import targets

PEERS = Path(__file__).resolve().parents[2] / "bench" / "peers"
SETTINGS = {
    "afterward": {"defaults": "concurrency 8", "tuned": "concurrency=64", "why": "overlap"},
    "pgqueuer": {"defaults": "batch_size 10", "tuned": "batch_size=100", "why": "fewer queries"},
    "procrastinate": {"defaults": "concurrency 1", "tuned": "concurrency=10", "why": "async"},
}


def _run(system: str, variant: str | None, workload: str, rate: float) -> dict[str, Any]:
    run: dict[str, Any] = {
        "system": system,
        "store": "postgres",
        "workload": workload,
        "round": 1,
        "figures": {"rate": rate},
    }
    if variant is not None:
        run["variant"] = variant
    return run


def _cells(lines: list[str], starts: str) -> list[str]:
    (row,) = [line for line in lines if line.startswith(starts)]
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_a_target_is_judged_against_the_faster_of_a_peers_two_variants() -> None:
    # Given PgQueuer faster tuned, Procrastinate faster at its defaults, and afterward
    # faster tuned than at its defaults
    data = {
        "meta": {"cores": 2, "settings": SETTINGS},
        "runs": [
            _run("afterward", "defaults", "throughput_1", 6000.0),
            _run("afterward", "tuned", "throughput_1", 9000.0),
            _run("pgqueuer", "defaults", "throughput_1", 4000.0),
            _run("pgqueuer", "tuned", "throughput_1", 8000.0),
            _run("procrastinate", "defaults", "enqueue_one", 1000.0),
            _run("procrastinate", "tuned", "enqueue_one", 900.0),
            _run("afterward", "defaults", "enqueue_one", 2500.0),
        ],
    }
    # When the targets are checked
    rows = targets(data)
    # Then afterward at its defaults is held against PgQueuer tuned, named with its setting
    worker = _cells(rows, "| tasks/s, 1 worker process, PostgreSQL")
    assert worker[1:] == ["6,000 vs pgqueuer (tuned: batch_size=100) 8,000: 0.75x", "no"]
    # And against Procrastinate at its defaults where those were the faster
    enqueue = _cells(rows, "| enqueue/s one at a time, PostgreSQL")
    assert enqueue[1] == "2,500 vs procrastinate (defaults) 1,000: 2.50x"


def test_the_tables_show_both_variants_of_every_system_and_the_settings() -> None:
    # Given afterward and PgQueuer at both variants, the tuned ones on the worker alone
    data = {
        "meta": {"cores": 2, "settings": SETTINGS, "versions": {"pgqueuer": "1.6.0"}},
        "runs": [
            _run("pgqueuer", "tuned", "throughput_1", 8000.0),
            _run("pgqueuer", "defaults", "throughput_1", 4000.0),
            _run("pgqueuer", "defaults", "enqueue_one", 2600.0),
            _run("afterward", "tuned", "throughput_1", 9000.0),
            _run("afterward", "defaults", "throughput_1", 6000.0),
        ],
    }
    # When the tables are written
    lines = store_tables(data)
    # Then afterward comes first, and each system's defaults row before its tuned one
    rows = [line.split("|")[1].strip() for line in lines if line.startswith("| ")]
    assert rows[1:] == [
        "**afterward** (defaults)",
        "**afterward** (tuned: concurrency=64)",
        "pgqueuer (defaults)",
        "pgqueuer (tuned: batch_size=100)",
    ]
    # And a tuned row has no enqueue figures of its own
    assert _cells(lines, "| pgqueuer (tuned")[1:4] == ["8,000", "-", "-"]
    # And the settings table states both variants and why
    assert _cells(settings_table(data), "| pgqueuer") == [
        "pgqueuer",
        "1.6.0",
        "batch_size 10",
        "`batch_size=100`",
        "fewer queries",
    ]


def test_figures_from_before_there_were_variants_read_as_one_row_per_system() -> None:
    # Given a file written before variants: no variant in its runs, a string per system
    data = {
        "meta": {
            "cores": 2,
            "settings": {"pgqueuer": "defaults (batch 10)"},
            "versions": {"pgqueuer": "1.6.0"},
        },
        "runs": [
            _run("afterward", None, "throughput_1", 6882.0),
            _run("pgqueuer", None, "throughput_1", 5994.0),
        ],
    }
    # When it is read again, then its rows, targets and settings are named as before
    assert "| pgqueuer | 5,994 |" in "\n".join(store_tables(data))
    assert _cells(targets(data), "| tasks/s, 1 worker process")[1] == (
        "6,882 vs pgqueuer 5,994: 1.15x"
    )
    settings = _cells(settings_table(data), "| pgqueuer")
    assert settings == ["pgqueuer", "1.6.0", "defaults (batch 10)"]


def test_every_tuned_setting_is_the_one_its_peer_module_applies() -> None:
    for system in SYSTEMS:
        name, value = system.tuned
        source = (PEERS / f"peer_{system.name}.py").read_text()
        assert re.findall(r'tuned\("(\w+)"\)', source) == [name], system.name
        assert value and system.label("tuned") == f"{system.name} (tuned: {name}={value})"
        # the tuned variant runs what its setting changes: the worker, or everything
        assert system.runs("tuned", "enqueue_one") is system.tunes_producer
        assert all(system.runs("tuned", w) for w in WORKER_WORKLOADS)
