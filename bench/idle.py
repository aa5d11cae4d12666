"""Idle cost of one `afterward worker` process, per store, and how fast it starts a task.

One real worker process (``.venv/bin/afterward worker bench.latency_app:afterward``, as the
README starts one) runs on an empty store. Once it has said it is ready and a warm-up has
passed, nothing is enqueued for ``--seconds`` (default 60) while this script counts:

- Redis, commands the worker sent: its URL carries ``client_name=aw-idle-…``; its
  connections are those ``CLIENT LIST`` shows with that name at either end of the window
  or that send ``CLIENT SETNAME`` with it inside. A ``MONITOR`` connection held for the
  window counts the commands from their addresses (an ``EVALSHA`` is one; the commands
  its script runs are not counted). Redis 7.0 keeps no per-client command count, and
  ``total_commands_processed`` counts every user of the shared server, so neither is used.
- PostgreSQL, transactions in the worker's database: the store lives in a database of its
  own (``aw_idle_…``, created here, dropped after); the count is the delta of its
  ``xact_commit + xact_rollback`` in ``pg_stat_database``, read from another database:
  transactions, not statements (an autocommit statement is one, ``BEGIN … COMMIT`` one).
  A ``VACUUM (ANALYZE)`` once the worker made its tables keeps autovacuum from analyzing
  the new catalog rows in the window (~40 transactions at once); its periodic visit may
  add one or two. Counters are published about once a second (each end may be off by a
  second's worth). ``pg_stat_statements`` is installed but not loaded here.
- Every store, the worker's wake-ups: voluntary + nonvoluntary context switches of all its
  threads (``/proc/<pid>/task/*/status``; a thread ending inside the window takes its count
  along), and its CPU (``utime + stime`` of ``/proc/<pid>/stat``, all threads, 10 ms ticks).

Then, idle to start: ``--tries`` times (default 5), after ``--gap`` seconds of idleness
(default 3; the first try right after the window), this process enqueues one task with
`Afterward.enqueue` and the task notes how long after the moment just before that call it
started (both processes share this machine's clock). p50 and max are shown.

    .venv/bin/python -m bench.idle [--seconds 60] [--stores sqlite postgres redis] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from afterward import Afterward

from . import latency_app
from .stores import drop

ROOT = Path(__file__).resolve().parents[1]
STORES = ("sqlite", "postgres", "redis")
APP = "bench.latency_app:afterward"
POSTGRES_ADMIN = "postgresql://127.0.0.1:5432/test"
REDIS = ("127.0.0.1", 6379)
TICK = os.sysconf("SC_CLK_TCK")
_MONITOR_LINE = re.compile(rb'^\+[\d.]+ \[\d+ ([^\]]+)\] "([^"]*)"(?: "([^"]*)" "([^"]*)")?')


def usage(pid: int) -> dict[str, int]:
    """CPU ticks (user + system), context switches of all threads, and the thread count."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    out = {"ticks": int(fields[11]) + int(fields[12]), "voluntary": 0, "nonvoluntary": 0}
    threads = list(Path(f"/proc/{pid}/task").iterdir())
    for thread in threads:
        with suppress(OSError):  # the thread ended
            for line in (thread / "status").read_text().splitlines():
                name, _, value = line.partition(":")
                if name.endswith("voluntary_ctxt_switches"):
                    out[name.partition("_")[0]] += int(value)
    return {**out, "threads": len(threads)}


@contextmanager
def store(kind: str, tmp: Path) -> Iterator[str]:
    """A fresh, empty store of `kind` only this run uses; removed afterwards."""
    tag = uuid.uuid4().hex[:8]
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'idle.db'}"
        return
    if kind == "redis":
        url = f"redis://{REDIS[0]}:{REDIS[1]}/0?prefix=aw_idle_{tag}&client_name=aw-idle-{tag}"
        try:
            yield url
        finally:
            drop(url)
        return
    database = f"aw_idle_{tag}"
    postgres(f"CREATE DATABASE {database}")
    try:
        yield f"postgresql://127.0.0.1:5432/{database}"
    finally:
        postgres(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def postgres(statement: str, *params: str, url: str = POSTGRES_ADMIN) -> int:
    """Run `statement` (on the `test` database); its first value, if any. Retried for a
    minute while the server refuses connections (other test runs may use them all)."""
    import psycopg

    deadline = time.monotonic() + 60
    while True:
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                cursor = conn.execute(statement.encode(), params)
                row = cursor.fetchone() if cursor.description else None
            return int(row[0]) if row else 0
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def pg_transactions(url: str) -> int:
    """``xact_commit + xact_rollback`` of the database of `url`, read from another one."""
    query = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s"
    return postgres(query, url.rpartition("/")[2])


def redis_addresses(name: str) -> set[str]:
    """Client addresses of the connections named `name`."""
    import redis

    with redis.Redis(host=REDIS[0], port=REDIS[1], decode_responses=True) as client:
        clients: list[dict[str, Any]] = client.client_list()
    return {c["addr"] for c in clients if c.get("name") == name}


def monitor(seconds: float, name: str) -> tuple[Counter[tuple[str, str]], set[str]]:
    """Commands Redis ran in the next `seconds`, by (client address, command name), and
    the addresses of the connections that named themselves `name` meanwhile."""
    seen: Counter[tuple[str, str]] = Counter()
    named: set[str] = set()
    deadline = time.monotonic() + seconds
    buffer = b""
    with socket.create_connection(REDIS) as sock:
        sock.sendall(b"MONITOR\r\n")
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(1 << 16)
            except TimeoutError:
                break
            if not chunk:
                raise SystemExit("Redis closed the MONITOR connection")
            *lines, buffer = (buffer + chunk).split(b"\r\n")
            for line in lines:
                if match := _MONITOR_LINE.match(line):
                    address, command = match[1].decode(), match[2].decode().upper()
                    seen[(address, command)] += 1
                    if command == "CLIENT" and match[4] == name.encode():  # a reconnection
                        named.add(address)
    return seen, named


def idle_window(kind: str, url: str, pid: int, seconds: float) -> dict[str, Any]:
    """What the idle worker `pid` cost over `seconds`."""
    load, name = os.getloadavg()[0], url.rpartition("client_name=")[2]
    addresses = redis_addresses(name) if kind == "redis" else set()
    before = pg_transactions(url) if kind == "postgres" else 0
    first, started = usage(pid), time.monotonic()
    if kind == "redis":
        seen, named = monitor(seconds, name)
    else:
        time.sleep(seconds)
    last, elapsed = usage(pid), time.monotonic() - started
    out: dict[str, Any] = {"seconds": elapsed, "load_1min": [load, os.getloadavg()[0]]}
    if kind == "postgres":  # over the time up to the second read (it may wait its turn)
        out["transactions"] = pg_transactions(url) - before
        out["calls_per_s"] = out["transactions"] / (time.monotonic() - started)
    if kind == "redis":
        addresses |= named | redis_addresses(name)
        names: Counter[str] = Counter()
        for (address, command), count in seen.items():
            if address in addresses:
                names[command] += count
        out["commands"] = dict(names.most_common())
        out["calls_per_s"] = names.total() / elapsed
        out["connections"] = sorted(addresses)
    switches = {k: last[k] - first[k] for k in ("voluntary", "nonvoluntary")}
    out["context_switches"] = switches
    out["wakeups_per_s"] = sum(switches.values()) / elapsed
    out["cpu_ms_per_s"] = (last["ticks"] - first["ticks"]) / TICK * 1000 / elapsed
    out["threads"] = last["threads"]
    return out


async def idle_to_start(url: str, tries: int, gap: float, ledger: Path) -> dict[str, Any]:
    """Milliseconds from just before each enqueue to its task's start, and of each call."""
    producer = Afterward(url=url, execution="workers")
    await producer.open()
    calls: list[float] = []
    try:
        for n in range(tries):
            if n:
                await asyncio.sleep(gap)
            calls.append(time.time())
            await producer.enqueue(latency_app.note_start, calls[-1], str(ledger))
            calls[-1] = (time.time() - calls[-1]) * 1000
            async with asyncio.timeout(30):  # TimeoutError: the worker did not start it
                while (ledger.read_bytes().count(b"\n") if ledger.exists() else 0) <= n:
                    await asyncio.sleep(0.0005)
    finally:
        await producer.aclose()
    delays = [float(x) * 1000 for x in ledger.read_text().split()]
    return {"p50": statistics.median(delays), "max": max(delays), "all": delays, "enqueue": calls}


@contextmanager
def worker(url: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """One ``afterward worker`` process on `url`, ready (it logged so); stopped after."""
    script = Path(sys.executable).with_name("afterward")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "afterward"]
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "AFTERWARD_URL": url, "PYTHONPATH": path}  # the same afterward
    with log.open("wb") as out:
        process = subprocess.Popen([*command, "worker", APP, "--log-level", "INFO"],
                                   env=env, cwd=log.parent, stdout=out, stderr=out)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while " ready: " not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker did not get ready:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(30)
        process.kill()  # only if it is still running
        process.wait()


def measure(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="aw-idle-") as folder:
        tmp = Path(folder)
        with store(kind, tmp) as url, worker(url, tmp / "worker.log") as process:
            if kind == "postgres":  # autovacuum would analyze the new catalog rows, in the window
                postgres("VACUUM (ANALYZE)", url=url)
            time.sleep(args.warmup)
            print(f"{kind}: worker {process.pid} ready, idle {args.seconds:g} s", file=sys.stderr)
            out = idle_window(kind, url, process.pid, args.seconds)
            out["start_ms"] = asyncio.run(idle_to_start(url, args.tries, args.gap, tmp / "ledger"))
    return out


def table(results: dict[str, dict[str, Any]]) -> Table:
    grid = Table(title="One idle `afterward worker` process")
    for column in ("store", "calls/s", "wake-ups/s", "CPU ms/s", "threads", "start p50 / max"):
        grid.add_column(column, justify="right", no_wrap=True)
    grid.add_column("load 1 min", no_wrap=True)
    for kind, r in results.items():
        unit = {"postgres": " xact", "redis": " cmd"}.get(kind, "")
        calls = f"{r['calls_per_s']:.2f}{unit}" if "calls_per_s" in r else "-"
        start = f"{r['start_ms']['p50']:.2f} / {r['start_ms']['max']:.2f} ms"
        load = "{:.2f} → {:.2f}".format(*r["load_1min"])
        grid.add_row(kind, calls, f"{r['wakeups_per_s']:.1f}", f"{r['cpu_ms_per_s']:.2f}",
                     str(r["threads"]), start, load)  # fmt: skip
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="idle window")
    parser.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES))
    parser.add_argument("--warmup", type=float, default=5.0, help="after the worker is ready")
    parser.add_argument("--tries", type=int, default=5, help="idle-to-start measurements")
    parser.add_argument("--gap", type=float, default=3.0, help="idle seconds between tries")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    logging.getLogger("afterward").setLevel(logging.ERROR)  # the producer's AOF warning
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # cleans up as Ctrl-C does
    code = str(Path(sys.modules["afterward"].__file__ or "?").parent)
    print(f"afterward from {code}; load {os.getloadavg()}", file=sys.stderr)
    results = {kind: measure(kind, args) for kind in args.stores}
    if args.json:
        meta = {"seconds": args.seconds, "cpus": os.cpu_count(), "at": time.time(), "code": code}
        print(json.dumps({"meta": meta, "stores": results}, indent=2))
    else:
        Console(width=max(Console().width, 110)).print(table(results))
        for kind, r in results.items():
            enqueue = statistics.median(r["start_ms"]["enqueue"])
            print(f"{kind}: enqueue call p50 {enqueue:.2f} ms; {r.get('commands', '')}")


if __name__ == "__main__":
    main()
