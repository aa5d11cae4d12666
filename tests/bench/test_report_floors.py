"""The report's floors table weighs each target against what was measured in the same run."""

from __future__ import annotations

from typing import Any

from bench.targets import floors


def _run(system: str, store: str, workload: str, **figures: float) -> dict[str, Any]:
    return {"system": system, "store": store, "workload": workload, "figures": figures}


def _data(*runs: dict[str, Any]) -> dict[str, Any]:
    return {"meta": {"cores": 2}, "runs": list(runs)}


def _row(lines: list[str], starts: str) -> list[str]:
    (row,) = [line for line in lines if line.startswith(starts)]
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_an_enqueue_budget_below_the_stores_floor_is_out_of_reach() -> None:
    # Given a peer enqueueing 4,000 a second (2x needs 125 µs an enqueue), and a 200 µs
    # floor from the rollback journal, the second of the two figures
    data = _data(
        _run("huey", "sqlite", "enqueue_one", rate=4000.0),
        _run(
            "floors", "machine", "floors", sqlite_commit_wal_us=600.0, sqlite_commit_delete_us=200.0
        ),
    )
    # When the floors are weighed
    cells = _row(floors(data), "| enqueue one at a time, SQLite")
    # Then the faster journal is the floor, and it alone is 1.6x the budget
    assert cells[1] == "≤ 125 µs an enqueue"
    assert cells[2].endswith(": 200 µs")
    assert cells[3] == "no: the floor alone is 1.6x the budget"


def test_an_enqueue_budget_above_the_floor_says_what_is_left() -> None:
    # Given a peer enqueueing 2,000 a second (2x needs 250 µs) and a 100 µs round trip
    data = _data(
        _run("huey", "redis", "enqueue_one", rate=2000.0),
        _run("floors", "machine", "floors", redis_round_trip_us=100.0),
    )
    # When the floors are weighed
    cells = _row(floors(data), "| enqueue one at a time, Redis")
    # Then the target is within reach, with 150 µs for the queue's own work
    assert cells[3] == "yes: 150 µs left for the queue's own work"


def test_two_processes_are_capped_by_the_cores_one_process_left_idle() -> None:
    # Given one worker process whose run kept 1.25 of 2 cores busy, and another 1.0
    data = _data(
        _run("afterward", "redis", "throughput_1", rate=9000.0, cores_busy=1.25),
        _run("afterward", "sqlite", "throughput_1", rate=6000.0, cores_busy=1.0),
    )
    # When the floors are weighed
    lines = floors(data)
    # Then two processes can do at most 2 / 1.25 = 1.6x one at that CPU per task
    redis = _row(lines, "| 2 worker processes ≥ 1.8x one, Redis")
    assert redis[3] == "not at this CPU per task: at most 1.60x"
    # And with half the machine idle the CPU allows 2x
    sqlite = _row(lines, "| 2 worker processes ≥ 1.8x one, SQLite")
    assert sqlite[3] == "by CPU: up to 2.00x"


def test_twice_the_fastest_peers_endpoint_is_weighed_against_the_bare_endpoint() -> None:
    # Given the endpoint with no tasks at 2,500 req/s and the fastest peer at 2,000
    data = _data(
        _run("web", "none", "web", rps=2500.0),
        _run("web", "saq", "web", rps=2000.0),
        _run("web", "arq", "web", rps=1500.0),
    )
    # When the floors are weighed
    cells = _row(floors(data), "| the lesson's /tasks on SQLite: ≥ 2x saq")
    # Then 2x the peer needs more than the endpoint with no tasks serves
    assert cells[1:] == [
        "4,000 req/s",
        "the same endpoint with no tasks at all: 2,500 req/s",
        "no: 0.62x of it",
    ]


def test_nothing_measured_gives_no_table() -> None:
    assert floors(_data()) == []


def test_parity_with_fastapi_is_weighed_against_the_durable_commit_floor() -> None:
    # Given FastAPI's endpoint at 2,000 req/s and the same endpoint committing its tasks
    # durably, running none, at 1,800
    data = _data(
        _run("web", "fastapi", "web", rps=2000.0),
        _run("web", "floor-commit", "web", rps=1800.0),
        _run("web", "sqlite", "web", rps=1200.0),
    )
    # When the floors are weighed
    cells = _row(floors(data), "| the lesson's /tasks on SQLite: ≥ FastAPI")
    # Then parity needs more than the floor serves: out of reach by the floor's share
    assert cells[1] == "2,000 req/s"
    assert cells[2].endswith("(`bench/web_floors.py`): 1,800 req/s")
    assert cells[3] == "no: 0.90x of it"
