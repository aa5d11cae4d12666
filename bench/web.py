"""The lesson's ``/tasks`` endpoint under uvicorn: req/s and latency, afterward vs FastAPI
and vs the peers that enqueue inside the endpoint.

Each variant runs in its own uvicorn process (one worker, uvloop/httptools when
installed); `wrk` drives it from a second process with 32 connections. Rounds are
interleaved (every variant once, then again), so a slow moment of the machine hits all of
them; the table shows the median round and the min-max of req/s.

    .venv/bin/python -m bench.web [--seconds 10] [--rounds 3] [--connections 32]
                                  [--variant none|fastapi|sqlite|postgres|redis|saq|arq|...]
                                  [--no-peer-workers]

Needs `wrk` (Debian: ``apt-get install wrk``). For afterward, every request's two tasks
must also have *run* by the end of the round; the table says how many did. afterward's
server logs at WARNING, as its workers do in `bench.compare` (``--log-level WARNING``): at
its default, INFO, it would write a line per task, which neither FastAPI's endpoint nor the
peers' do in the web process.

A peer variant (SAQ, arq, PgQueuer, Procrastinate, RQ) runs `bench/peers/web_app.py` in
the peer's own virtualenv (see `bench.compare`), with FastAPI and uvicorn at the versions
afterward has here. Its endpoint enqueues the two tasks and answers; one worker process of
the peer, with its defaults, runs them at the same time on the same two cores, because
afterward's figure includes running its tasks too. ``--no-peer-workers`` leaves the worker
out (the endpoint alone, as the issue's reference figures were taken).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx

from .peers.machine import cores_busy, cpu_ticks
from .stores import drop, fresh_url

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "none": ("bench.web_apps:none", None),
    "fastapi": ("bench.web_apps:plain", None),
    "sqlite": ("bench.web_apps:afterward", "sqlite"),
    "postgres": ("bench.web_apps:afterward", "postgres"),
    "redis": ("bench.web_apps:afterward", "redis"),
    "floor-commit": ("bench.web_floors:commit", "floor"),
    "floor-durable": ("bench.web_floors:durable", "floor"),
}
PEERS = ("saq", "arq", "pgqueuer", "procrastinate", "rq")
"""Peers measured enqueueing inside the endpoint (each on its own kind of store)."""
LABELS = {
    "none": "endpoint without tasks",
    "fastapi": "FastAPI BackgroundTasks (in memory, lost on a crash)",
    "sqlite": "afterward, SQLite (synchronous=FULL)",
    "postgres": "afterward, PostgreSQL",
    "redis": "afterward, Redis",
    "floor-commit": "floor: the endpoint and a durable commit of its tasks, none run (by hand)",
    "floor-durable": "floor: FastAPI's BackgroundTasks, committed before, recorded after (by hand)",
    "saq": "SAQ enqueues in the endpoint (Redis), its worker beside",
    "arq": "arq enqueues in the endpoint (Redis), its worker beside",
    "pgqueuer": "PgQueuer enqueues in the endpoint (PostgreSQL), its worker beside",
    "procrastinate": "Procrastinate enqueues in the endpoint (PostgreSQL), its worker beside",
    "rq": "RQ enqueues in a def endpoint (Redis), its worker beside",
}
PEER_DIR = ROOT / "bench" / "peers"


@dataclass(frozen=True)
class Round:
    """One wrk run against one variant."""

    variant: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    cpu_ms_per_request: float
    """CPU time of the uvicorn process (all its threads) per response of the timed run."""
    cores_busy: float
    """The whole machine's busy cores during the timed run (of `os.cpu_count()`)."""
    tasks: tuple[int, int] | None
    """afterward: (succeeded, stored) a second after the round; all stored must succeed.
    A peer with its worker: (tasks its worker ran, 2 x responses)."""


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(port: int, seconds: float, connections: int, script: Path) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/tasks?title=Ship+release",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    if len(latency) != 2:
        raise SystemExit(f"wrk printed no latency distribution:\n{out}")
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50": _ms(latency["50"]),
        "p99": _ms(latency["99"]),
        "total": total,
        "bad": int(bad.group(1)) if bad else 0,
    }


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_answering(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"uvicorn exited with {proc.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit("uvicorn did not answer within 30 s")


async def _tally(url: str) -> tuple[int, int]:
    """(tasks succeeded, tasks stored)."""
    from afterward import Afterward, JobState

    afterward = Afterward(url=url, execution="workers")
    try:
        await afterward.open()
        counts = await afterward.store.counts()
        done = sum(n for (_, state), n in counts.items() if state is JobState.SUCCEEDED)
        return done, sum(counts.values())
    finally:
        await afterward.aclose()


def _serve(
    command: list[str], env: dict[str, str], cwd: Path
) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    args = ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen([*command, *args], env=env, cwd=cwd)
    try:
        _wait_answering(port, proc)
    except BaseException:
        proc.kill()
        raise
    return proc, port


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid`, all its threads (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(
    port: int, tmp: Path, seconds: float, connections: int, pid: int
) -> tuple[dict[str, float], int]:
    """wrk's figures for the timed run, with the server's CPU per request and the
    machine's busy cores; and all responses including the warm-up's."""
    script = tmp / "post.lua"
    script.write_text('wrk.method = "POST"\n')
    warm = run_wrk(port, 1.0, connections, script)  # imports, store schema, caches
    cpu, ticks = _process_cpu_s(pid), cpu_ticks()
    measured = run_wrk(port, seconds, connections, script)
    measured["cores"] = cores_busy(ticks)
    measured["cpu_ms"] = (_process_cpu_s(pid) - cpu) * 1000 / max(1.0, measured["total"])
    return measured, int(warm["total"] + measured["total"])


def one_round(
    variant: str, tmp: Path, seconds: float, connections: int, *, peer_workers: bool = True
) -> Round:
    """One wrk run against one variant, on a fresh store."""
    if variant in PEERS:
        return _peer_round(variant, tmp, seconds, connections, peer_workers)
    target, kind = VARIANTS[variant]
    url = fresh_url(kind, tmp) if kind not in (None, "floor") else None
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    env["AFTERWARD_LOG_LEVEL"] = "WARNING"
    if url:
        env["AFTERWARD_URL"] = url
    if kind == "floor":
        floor_db = tmp / f"{variant}-{time.monotonic_ns()}.db"
        env["AW_BENCH_FLOOR_DB"] = str(floor_db)
    try:
        proc, port = _serve([sys.executable, "-m", "uvicorn", target], env, tmp)
        try:
            measured, _ = _measure(port, tmp, seconds, connections, proc.pid)
            tasks = None
            if url:
                time.sleep(1.0)  # the last requests' tasks run right after their responses
                tasks = asyncio.run(_tally(url))
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        if url:
            drop(url)
    return _round(variant, measured, tasks)


def _round(variant: str, measured: dict[str, float], tasks: tuple[int, int] | None) -> Round:
    return Round(
        variant=variant,
        requests_per_s=measured["rps"],
        p50_ms=measured["p50"],
        p99_ms=measured["p99"],
        non_2xx=int(measured["bad"]),
        cpu_ms_per_request=measured["cpu_ms"],
        cores_busy=measured["cores"],
        tasks=tasks,
    )


def _peer_round(name: str, tmp: Path, seconds: float, connections: int, with_worker: bool) -> Round:
    from .runs import Stores
    from .systems import SYSTEMS
    from .venvs import web_python_of

    system = next(s for s in SYSTEMS if s.name == name)
    python = str(web_python_of(system))
    stores = Stores(tmp)
    url = stores.url(name, system.stores[0])
    ledger = tmp / f"{name}.ledger"
    ledger.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(PEER_DIR),
        "AW_BENCH_PEER": name,
        "AW_BENCH_URL": url,
        "AW_BENCH_LEDGER": str(ledger),
    }

    def in_peer(code: str) -> str:
        done = subprocess.run(
            [python, "-c", code], env=env, cwd=PEER_DIR, capture_output=True, text=True
        )
        if done.returncode:
            raise SystemExit(f"{name}: {done.stderr.strip()[-300:]}")
        return done.stdout

    workers: list[subprocess.Popen[bytes]] = []
    try:
        in_peer(
            f"import asyncio, peer_{name} as p\nif hasattr(p, 'prepare'):\n"
            f"    asyncio.run(p.prepare({url!r}))"
        )
        if with_worker:
            commands = json.loads(
                in_peer(
                    f"import json, peer_{name} as p\n"
                    f"print(json.dumps(p.worker_commands({url!r}, 1)))"
                )
            )
            workers = [
                subprocess.Popen(
                    c,
                    env=env,
                    cwd=PEER_DIR,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                for c in commands
            ]
        proc, port = _serve([python, "-m", "uvicorn", "web_app:app"], env, PEER_DIR)
        try:
            measured, responses = _measure(port, tmp, seconds, connections, proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
        tasks = None
        if with_worker:
            time.sleep(1.0)  # as for afterward: a second for the last tasks
            tasks = (count_lines(ledger), 2 * responses)
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        stores.drop()
    return _round(name, measured, tasks)


def count_lines(path: Path) -> int:
    """How many tasks a peer's worker recorded in its ledger."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def table(rounds: list[Round], variants: list[str]) -> str:
    lines = [
        "| variant | req/s (median, min-max) | p50 ms | p99 ms | req/s vs FastAPI's "
        "| server CPU ms per request | machine cores busy | non-2xx |",
        "|---|---|---|---|---|---|---|---|",
    ]
    medians: dict[str, float] = {}
    for v in variants:
        mine = [r for r in rounds if r.variant == v]
        medians[v] = statistics.median(r.requests_per_s for r in mine)
    for v in variants:
        mine = sorted((r for r in rounds if r.variant == v), key=lambda r: r.requests_per_s)
        mid = mine[len(mine) // 2]
        rps = [r.requests_per_s for r in mine]
        ratio = f"{medians[v] / medians['fastapi']:.2f}x" if "fastapi" in medians else "-"
        lines.append(
            f"| {LABELS[v]} | {medians[v]:,.0f} ({min(rps):,.0f}-{max(rps):,.0f}) | "
            f"{mid.p50_ms:.1f} | {mid.p99_ms:.1f} | {ratio} | {mid.cpu_ms_per_request:.3f} "
            f"| {mid.cores_busy:.2f} | {sum(r.non_2xx for r in mine)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--variant", action="append", choices=[*VARIANTS, *PEERS])
    parser.add_argument(
        "--no-peer-workers", action="store_true", help="peers: the endpoint alone, no worker"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench.web needs wrk: apt-get install wrk")
    variants = args.variant or [*VARIANTS, *PEERS]
    rounds: list[Round] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            for v in variants:
                r = one_round(
                    v,
                    Path(tmp),
                    args.seconds,
                    args.connections,
                    peer_workers=not args.no_peer_workers,
                )
                rounds.append(r)
                done = "" if r.tasks is None else f", tasks succeeded {r.tasks[0]:,}/{r.tasks[1]:,}"
                print(
                    f"round {n + 1} {v:9} {r.requests_per_s:8,.0f} req/s  p50 {r.p50_ms:6.1f} ms"
                    f"  p99 {r.p99_ms:6.1f} ms{done}",
                    flush=True,
                )
    print()
    print(table(rounds, variants))


if __name__ == "__main__":
    main()
