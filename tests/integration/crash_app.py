"""The app the crash tests run under real uvicorn and worker processes.

Tasks append to ledger files in the working directory *after* doing their work, so a
test can count what ran and how many times.
"""

import os
import random
import time

from fastapi import FastAPI

from afterward import Afterward, task
from afterward.fastapi import BackgroundTasks

afterward = Afterward()
app = FastAPI(lifespan=afterward.lifespan)


def append(name: str, line: str) -> None:
    with open(name, "a") as ledger:
        ledger.write(line + "\n")


def long_task(marker: str, seconds: float) -> None:
    append("started.txt", f"{marker} {os.getpid()}")
    time.sleep(seconds)
    append("done.txt", f"{marker} {os.getpid()}")


@task  # enqueued by the tests, not by the app's own code
def tick(n: int) -> None:
    time.sleep(random.uniform(0.001, 0.02))
    append("ledger.txt", str(n))


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/long/{marker}")
def start_long(marker: str, seconds: float, background_tasks: BackgroundTasks) -> dict[str, str]:
    ref = background_tasks.add_task(long_task, marker, seconds)
    return {"task": ref.id}


@task
def step(chain: int, index: int) -> None:
    """One link of a chain; records `chain:index` after its (short) work."""
    time.sleep(random.uniform(0.0, 0.004))
    append("chains.txt", f"{chain}:{index}")
