"""A rerun is judged against an earlier one: a figure counts as worse only past the earlier
min-max spread, in the direction that is worse for that figure."""

from __future__ import annotations

from typing import Any

from bench.regressions import control_verdicts, peer_drift, report, verdicts


def _runs(system: str, store: str, workload: str, figure: str, values: list[float]) -> list[Any]:
    return [
        {"system": system, "store": store, "workload": workload, "round": i, "figures": {figure: v}}
        for i, v in enumerate(values, 1)
    ]


def _data(*groups: list[Any]) -> dict[str, Any]:
    return {"meta": {}, "runs": [run for group in groups for run in group]}


def test_a_figure_is_worse_only_past_the_old_spread_and_in_its_own_direction() -> None:
    # Given an earlier run with a spread of 200 tasks/s and 0.2 ms
    old = _data(
        _runs("afterward", "sqlite", "throughput_1", "rate", [6000.0, 6100.0, 6200.0]),
        _runs("afterward", "sqlite", "latency", "p50_ms", [1.0, 1.1, 1.2]),
        _runs("web", "redis", "web", "rps", [1000.0, 1010.0, 1020.0]),
    )
    # When the rerun loses 150 tasks/s, gains 0.3 ms and loses 35 req/s
    new = _data(
        _runs("afterward", "sqlite", "throughput_1", "rate", [5900.0, 5950.0, 6000.0]),
        _runs("afterward", "sqlite", "latency", "p50_ms", [1.3, 1.4, 1.5]),
        _runs("web", "redis", "web", "rps", [970.0, 975.0, 985.0]),
    )
    found = {(v.store, v.label): v for v in verdicts(old, new)}
    # Then the throughput is within the spread, and the latency and the endpoint are worse
    assert not found["sqlite", "tasks/s 1 proc"].worse
    assert found["sqlite", "latency p50 ms"].worse
    assert found["redis", "endpoint req/s"].worse
    assert "Worse than the old spread (2)" in report(old, new)


def test_a_faster_rerun_is_never_worse() -> None:
    old = _data(_runs("afterward", "redis", "latency", "p99_ms", [2.0, 2.0, 2.0]))
    new = _data(_runs("afterward", "redis", "latency", "p99_ms", [1.0, 1.1, 1.2]))
    (verdict,) = verdicts(old, new)
    assert not verdict.worse and verdict.change < 0


def test_drift_reads_only_the_peers_and_the_bare_endpoints() -> None:
    # Given afterward twice as fast, a peer 10 % slower and FastAPI's endpoint 10 % faster
    old = _data(
        _runs("afterward", "redis", "throughput_1", "rate", [100.0]),
        _runs("huey", "redis", "throughput_1", "rate", [100.0]),
        _runs("web", "fastapi", "web", "rps", [100.0]),
        _runs("web", "sqlite", "web", "rps", [100.0]),
    )
    new = _data(
        _runs("afterward", "redis", "throughput_1", "rate", [200.0]),
        _runs("huey", "redis", "throughput_1", "rate", [90.0]),
        _runs("web", "fastapi", "web", "rps", [110.0]),
        _runs("web", "sqlite", "web", "rps", [200.0]),
    )
    # Then the drift holds the peer and FastAPI, not afterward's own figures
    assert sorted(round(r, 2) for r in peer_drift(old, new)) == [0.9, 1.1]


def test_the_endpoints_without_afterward_are_judged_as_controls() -> None:
    # Given a rerun where the bare endpoint's p99 rose past its spread, FastAPI's req/s rose
    # past its own, and FastAPI's p99 stayed within
    old = _data(
        _runs("web", "none", "web", "p99_ms", [30.0, 31.0, 32.0]),
        _runs("web", "fastapi", "web", "p99_ms", [35.0, 36.0, 37.0]),
        _runs("web", "fastapi", "web", "rps", [2000.0, 2010.0, 2020.0]),
        _runs("web", "sqlite", "web", "p99_ms", [50.0, 52.0, 54.0]),
    )
    new = _data(
        _runs("web", "none", "web", "p99_ms", [38.0, 40.0, 50.0]),
        _runs("web", "fastapi", "web", "p99_ms", [34.0, 36.0, 38.0]),
        _runs("web", "fastapi", "web", "rps", [2300.0, 2400.0, 2500.0]),
        _runs("web", "sqlite", "web", "p99_ms", [70.0, 75.0, 80.0]),
    )
    # Then the two that left their spread count as moved, the faster one too (the machine
    # changed either way), and only the slower one as worse
    found = {v.label: (v.moved, v.worse) for v in control_verdicts(old, new)}
    assert found == {
        "bare endpoint p99 ms": (True, True),
        "FastAPI's own req/s": (True, False),
        "FastAPI's own p99 ms": (False, False),
    }
    assert "beyond their old spread (2): bare endpoint p99 ms, FastAPI's own req/s" in report(
        old, new
    )
    # And the controls are not counted among afterward's figures
    assert [v.store for v in verdicts(old, new)] == ["sqlite"]
