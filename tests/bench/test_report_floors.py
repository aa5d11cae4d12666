"""The report's floors table weighs each target against what was measured in the same run."""

from __future__ import annotations

from typing import Any

from bench.report import floors


def _run(system: str, store: str, workload: str, **figures: float) -> dict[str, Any]:
    return {"system": system, "store": store, "workload": workload, "figures": figures}


def _data(*runs: dict[str, Any]) -> dict[str, Any]:
    return {"meta": {"cores": 2}, "runs": list(runs)}


def _row(lines: list[str], starts: str) -> list[str]:
    (row,) = [line for line in lines if line.startswith(starts)]
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_an_enqueue_budget_below_the_stores_floor_is_out_of_reach() -> None:
    # Given a peer enqueueing 4,000 a second (2x needs 125 µs an enqueue) and a 200 µs floor
    data = _data(
        _run("huey", "sqlite", "enqueue_one", rate=4000.0),
        _run(
            "floors", "machine", "floors", sqlite_commit_wal_us=200.0, sqlite_commit_delete_us=600.0
        ),
    )
    # When the floors are weighed
    cells = _row(floors(data), "| enqueue one at a time, SQLite")
    # Then the faster journal is the floor, and it alone is 1.6x the budget
    assert cells[1] == "≤ 125 µs an enqueue"
    assert cells[2].endswith(": 200 µs")
    assert cells[3] == "no: the floor alone is 1.6x the budget"


def test_two_processes_are_capped_by_the_cores_one_process_left_idle() -> None:
    # Given one worker process whose run kept 1.25 of 2 cores busy
    data = _data(_run("afterward", "redis", "throughput_1", rate=9000.0, cores_busy=1.25))
    # When the floors are weighed
    cells = _row(floors(data), "| 2 worker processes ≥ 1.8x one, Redis")
    # Then two processes can do at most 2 / 1.25 = 1.6x one
    assert cells[3] == "no: at most 1.60x"


def test_the_endpoint_targets_are_weighed_against_the_bare_endpoint_and_its_cpu() -> None:
    # Given the bare endpoint at 2,500 req/s and 0.400 ms, FastAPI's at 0.530 ms, the fastest
    # peer at 2,000 req/s, and SQLite's own CPU for a request's writes at 220 µs
    data = _data(
        _run("web", "none", "web", rps=2500.0, cpu_ms_per_request=0.400),
        _run("web", "fastapi", "web", rps=2000.0, cpu_ms_per_request=0.530),
        _run("web", "saq", "web", rps=2000.0, cpu_ms_per_request=0.450),
        _run("floors", "machine", "floors", sqlite_request_cpu_us=220.0),
    )
    # When the floors are weighed
    lines = floors(data)
    # Then 2x the peer needs more than the endpoint with no tasks serves
    peer = _row(lines, "| the lesson's /tasks on SQLite: ≥ 2x saq")
    assert peer[1:] == [
        "4,000 req/s",
        "the same endpoint with no tasks at all: 2,500 req/s",
        "no: 0.62x of it",
    ]
    # And FastAPI's CPU per request is below the bare endpoint plus SQLite's writes
    fastapi = _row(lines, "| the lesson's /tasks on SQLite: req/s ≥ FastAPI")
    assert fastapi[1].startswith("≤ 0.530 ms server CPU a request")
    assert "= 0.620 ms" in fastapi[2]
    assert fastapi[3] == "no: the floor alone is 1.17x the budget"


def test_a_floor_missing_from_the_run_is_said_not_guessed() -> None:
    # Given the endpoint figures of a run that did not measure SQLite's CPU per request
    data = _data(
        _run("web", "none", "web", rps=2500.0, cpu_ms_per_request=0.400),
        _run("web", "fastapi", "web", rps=2000.0, cpu_ms_per_request=0.530),
    )
    # When the floors are weighed
    cells = _row(floors(data), "| the lesson's /tasks on SQLite: req/s ≥ FastAPI")
    # Then the row says it was not measured and gives no verdict
    assert cells[2].startswith("not measured in this run")
    assert cells[3] == "-"
