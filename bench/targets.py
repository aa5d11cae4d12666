"""The targets of the performance issue checked against the figures, and the floors and
ceilings measured in the same run that put a target out of reach, or not."""

from __future__ import annotations

import statistics
from typing import Any

from .figures import STORE_NAMES, Key, figure_values, median_of, row_label, system_of
from .web import PEERS as PEER_ENDPOINTS


def _fastest_peer(
    table: dict[Key, list[float]], store: str, workload: str
) -> tuple[str, float] | None:
    """The peer row (any variant) with the highest median, and that median."""
    best: tuple[str, float] | None = None
    for (s, st, w), values in table.items():
        if system_of(s) != "afterward" and st == store and w == workload:
            mid = statistics.median(values)
            if best is None or mid > best[1]:
                best = (s, mid)
    return best


def targets(data: dict[str, Any]) -> list[str]:
    """Each target of the performance issue: met or not, by how much."""
    rate = figure_values(data, "rate")
    p50, p99 = figure_values(data, "p50_ms"), figure_values(data, "p99_ms")
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
            ours = median_of(rate, ("afterward", store, workload))
            peer = _fastest_peer(rate, store, workload)
            if ours is not None and peer is not None:
                ratio = ours / peer[1]
                row(
                    f"{label}, {title}: ≥ 2x the fastest peer",
                    f"{ours:,.0f} vs {row_label(data, peer[0])} {peer[1]:,.0f}: {ratio:.2f}x",
                    ratio >= 2,
                )
        one = median_of(rate, ("afterward", store, "throughput_1"))
        two = median_of(rate, ("afterward", store, "throughput_2"))
        if one and two:
            row(f"2 processes ≥ 1.8x one, {title}", f"{two / one:.2f}x", two / one >= 1.8)
        lat50 = median_of(p50, ("afterward", store, "latency"))
        lat99 = median_of(p99, ("afterward", store, "latency"))
        if lat50 is not None and lat99 is not None:
            limit50, limit99 = (3.0, 10.0) if store == "sqlite" else (1.0, 3.0)
            row(
                f"enqueue→start, idle worker, {title}: p50 ≤ {limit50:g} ms, p99 ≤ {limit99:g} ms",
                f"p50 {lat50:.1f} ms, p99 {lat99:.1f} ms",
                lat50 <= limit50 and lat99 <= limit99,
            )
    web = figure_values(data, "rps")
    fastapi = median_of(web, ("web", "fastapi", "web"))
    ours = median_of(web, ("web", "sqlite", "web"))
    if fastapi and ours:
        web99 = figure_values(data, "p99_ms")
        theirs99 = median_of(web99, ("web", "fastapi", "web")) or 0
        ours99 = median_of(web99, ("web", "sqlite", "web")) or 0
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
    measured = [m for n in names if (m := median_of(figure_values(data, n), FLOOR_KEY)) is not None]
    peer = _fastest_peer(figure_values(data, "rate"), store, "enqueue_one")
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
        f"| enqueue one at a time, {title}: ≥ 2x {row_label(data, peer[0])} ({peer[1]:,.0f}/s) "
        f"| ≤ {budget:,.0f} µs an enqueue | {what}: {floor:,.0f} µs | {verdict} |"
    ]


def _two_process_rows(data: dict[str, Any], store: str, title: str) -> list[str]:
    one = median_of(figure_values(data, "cores_busy"), ("afterward", store, "throughput_1"))
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
    rps = figure_values(data, "rps")
    peers = [(v, median_of(rps, ("web", v, "web"))) for v in PEER_ENDPOINTS]
    return max(((v, r) for v, r in peers if r), key=lambda p: p[1], default=None)


def _endpoint_rows(data: dict[str, Any]) -> list[str]:
    return _parity_row(data) + _twice_the_peer_row(data)


def _parity_row(data: dict[str, Any]) -> list[str]:
    rps = figure_values(data, "rps")
    fastapi = median_of(rps, ("web", "fastapi", "web"))
    floor = median_of(rps, ("web", "floor-commit", "web"))
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
    bare = median_of(figure_values(data, "rps"), ("web", "none", "web"))
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
    blocking = median_of(figure_values(data, "redis_blocking_round_trip_us"), FLOOR_KEY)
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
