"""Run one workload against one task queue and print its figures as one JSON line.

    python driver.py PEER WORKLOAD --url URL --ledger FILE [--n N] [--processes P]
                     [--setting NAME=VALUE]

PEER names a module ``peer_<PEER>.py`` beside this file, run with the peer's own
virtualenv's Python (standard library and the peer only). It defines
``Client(url)`` with ``async start()``, ``async enqueue(enqueued_at)``,
``async enqueue_many(times)`` and ``async close()``, and
``worker_commands(url, processes) -> list[list[str]]`` (the processes to start: one
supervisor, or one per worker process). Its task calls `ledger.record`.

Without ``--setting`` the peer runs at its defaults; with it, at its tuned variant: the
setting goes to ``AW_BENCH_SETTING`` before the peer module is imported (its worker
processes inherit it), and the module applies it through `clients.tuned` (`bench.compare`'s
SYSTEMS table states each peer's).

Workloads: ``enqueue_one`` (one client, one task at a time), ``enqueue_bulk`` (one client,
the peer's bulk call, 500 a call), ``throughput`` (N tasks stored, then a worker with P
processes drains them; first to last finish), ``latency`` (an idle worker; one task at a
time; enqueue→start delays).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ledger  # noqa: E402
from clients import SETTING_ENV  # noqa: E402
from machine import cores_busy, cpu_ticks  # noqa: E402

BULK = 500
WARM_UP = 50
"""Untimed enqueues before `enqueue_one` is timed (connections, caches)."""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _wait_for(
    path: Path, n: int, timeout: float, workers: Workers, *, partial: bool = False
) -> tuple[int, int]:
    """Wait until `n` runs are recorded; with `partial`, at most `timeout` seconds after
    the first one (slow peers are timed on what they ran by then). Returns the machine's
    `cpu_ticks` when the first run was seen."""
    deadline = time.monotonic() + timeout
    first: tuple[int, int] | None = None
    while ledger.count(path) < n:
        if (code := workers.poll()) is not None:
            raise SystemExit(f"a worker exited with {code}")
        if first is None and ledger.count(path) > 0:
            first = cpu_ticks()
            if partial:
                deadline = time.monotonic() + timeout
        if time.monotonic() > deadline:
            if partial and ledger.count(path) > 1:
                return first or cpu_ticks()
            raise SystemExit(f"only {ledger.count(path)} of {n} tasks ran in {timeout:.0f} s")
        time.sleep(0.0002 if n - ledger.count(path) < 2 else 0.05)
    return first or cpu_ticks()


class Workers:
    """The worker processes a peer asked for, each in its own process group."""

    def __init__(self, peer: Any, url: str, processes: int) -> None:
        paths = [str(HERE), os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        self.procs = [
            subprocess.Popen(
                command, cwd=HERE, env=env, stdout=subprocess.DEVNULL, start_new_session=True
            )
            for command in peer.worker_commands(url, processes)
        ]

    def poll(self) -> int | None:
        """The exit code of a worker that ended, or None while all run."""
        for proc in self.procs:
            if proc.poll() is not None:
                return proc.returncode
        return None

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


async def _enqueue_one(client: Any, n: int) -> dict[str, Any]:
    for _ in range(WARM_UP):  # first calls: connections, caches (left out, as start-up is)
        await client.enqueue(time.time())
    started = time.perf_counter()
    for _ in range(n):
        await client.enqueue(time.time())
    return {"rate": n / (time.perf_counter() - started)}


async def run(
    peer: Any, workload: str, url: str, path: Path, n: int, processes: int, budget: float
) -> dict[str, Any]:
    if hasattr(peer, "prepare"):
        await peer.prepare(url)
    client = peer.Client(url)
    await client.start()
    try:
        if workload == "enqueue_one":
            return await _enqueue_one(client, n)
        if workload == "enqueue_bulk":
            started = time.perf_counter()
            for at in range(0, n, BULK):
                await client.enqueue_many([time.time()] * min(BULK, n - at))
            return {"rate": n / (time.perf_counter() - started)}
        if workload == "throughput":
            for at in range(0, n, BULK):
                await client.enqueue_many([time.time()] * min(BULK, n - at))
            worker = Workers(peer, url, processes)
            try:
                first = _wait_for(path, n, budget, worker, partial=True)
                cores = cores_busy(first)  # the servers', the workers' and this poller's
            finally:
                worker.stop()
            done = sorted(t for t, _ in ledger.lines(path))
            rate = (len(done) - 1) / (done[-1] - done[0])
            return {"rate": rate, "ran": len(done), "cores_busy": cores}
        if workload == "latency":
            worker = Workers(peer, url, 1)
            try:
                await client.enqueue(time.time())  # the first task waits for the worker to start
                _wait_for(path, 1, 120, worker)
                await asyncio.sleep(1.0)
                for i in range(n):
                    await client.enqueue(time.time())
                    _wait_for(path, i + 2, 30, worker)
                    await asyncio.sleep(0.005)  # idle again before the next one
            finally:
                worker.stop()
            delays = [d * 1000 for _, d in ledger.lines(path)[1:]]
            return {
                "p50_ms": statistics.median(delays),
                "p99_ms": _percentile(delays, 0.99),
                "max_ms": max(delays),
            }
        raise SystemExit(f"unknown workload {workload!r}")
    finally:
        await client.close()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # The workers run in process groups of their own: a driver stopped with SIGTERM (the
    # harness interrupted) unwinds through `Workers.stop` instead of leaving them running.
    raise SystemExit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer")
    parser.add_argument(
        "workload", choices=["enqueue_one", "enqueue_bulk", "throughput", "latency"]
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--ledger", type=Path, required=True)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument(
        "--budget", type=float, default=60.0, help="throughput: seconds at most from the first run"
    )
    parser.add_argument(
        "--setting", default="", help="NAME=VALUE: the peer's tuned variant (default: defaults)"
    )
    args = parser.parse_args()
    os.environ[ledger.LEDGER_ENV] = str(args.ledger)
    os.environ[SETTING_ENV] = args.setting
    os.environ["AW_BENCH_URL"] = args.url
    peer = importlib.import_module(f"peer_{args.peer}")
    result = asyncio.run(
        run(peer, args.workload, args.url, args.ledger, args.n, args.processes, args.budget)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
