"""Store restart mid-run: PostgreSQL restarted in immediate mode; Redis (a private server
with AOF `appendfsync always`) SIGKILLed and started again. Workers must resume by
themselves; lost 0. (SQLite has no server to restart: covered by the process kills.)"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from .. import app
from ..harness import Fleet, Result, enqueue, store_url, wait_finished
from ..ledger import Ledger
from ..servers import PrivateRedis, restart_postgres
from ..sizes import Size

NAME = "3 store restart mid-run"


def run(kind: str, folder: Path, size: Size) -> tuple[Result, list[str]]:
    """Restart the store once the workers are busy; measure how soon they resume."""
    if kind == "sqlite":
        return Result(NAME, kind, 0, 0, 0, 0.0, notes="no server: see experiments 1 and 2"), []
    redis = PrivateRedis(folder) if kind == "redis" else None
    url = store_url(kind, folder)
    if redis is not None:
        redis.start()
        url = f"{redis.url}?prefix=aw_restart"
    ledger = Ledger(folder / "ledger.db")
    try:
        total = asyncio.run(
            enqueue(url, [(app.work, (f"r{n}", 5.0)) for n in range(size.restart_tasks)])
        )
        fleet = Fleet(url, folder, ledger, 2, ["--concurrency", "4"])
        started = time.monotonic()
        try:
            while ledger.count() < total // 10:
                time.sleep(0.05)
            if redis is not None:
                redis.crash()
                time.sleep(1.0)
                back = redis.start()
            else:
                back = restart_postgres()
            before = ledger.count()
            while ledger.count() <= before and ledger.count() < total:
                time.sleep(0.01)
            resumed = time.time() - back
            wait_finished(url, total, timeout=300)
            alive = all(p.poll() is None for p in fleet.procs)
        finally:
            fleet.stop()
        runs = ledger.runs()
        return Result(
            experiment=NAME,
            store=kind,
            accepted=total,
            lost=sum(1 for n in range(total) if runs[f"r{n}"] == 0),
            twice=sum(1 for c in runs.values() if c > 1),
            seconds=time.monotonic() - started,
            recovery=[resumed],
            checks={"workers resumed without restart": alive},
            notes=f"work resumed {resumed:.2f} s after the server was back",
        ), ([] if redis is not None else [url])
    finally:
        if redis is not None:
            redis.stop()
