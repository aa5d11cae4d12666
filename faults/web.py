"""The web app of the web-kill experiment: in-app mode, tasks run right after responses."""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

from fastapi import FastAPI

from afterward import Afterward
from afterward.fastapi import BackgroundTasks

from .ledger import record

afterward = Afterward()
app = FastAPI(lifespan=afterward.lifespan)


def deliver(key: str, padding: str = "") -> None:
    """The request's task: may be killed while it runs (once per task: a task killed on
    every attempt would rightly end `failed`), then records itself. `padding` only makes
    the stored task bigger (to fill a disk)."""
    point, _, probability = os.environ.get("AFTERWARD_FAULT_KILL_AT", "").partition(":")
    marker = Path(f"killed-{key}")
    chosen = random.random() < float(probability or 1)
    if point == "while_running" and chosen and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    record(key)


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/orders/{key}")
def place(key: str, background_tasks: BackgroundTasks, pad: int = 0) -> dict[str, str]:
    background_tasks.add_task(deliver, key, "x" * pad)
    return {"key": key}


@app.post("/broken/{key}")
def broken(key: str, background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(deliver, key)
    raise RuntimeError("the endpoint failed after adding its task")
