"""The app the logging tests serve under plain uvicorn and run under `afterward worker`:
one request stores a task that logs and succeeds and one that logs and fails."""

import logging

from fastapi import FastAPI

from afterward import Afterward, RetryPolicy
from afterward.fastapi import BackgroundTasks

log = logging.getLogger("logging_app")

afterward = Afterward(retry=RetryPolicy(max_attempts=2, backoff_base=0.1, backoff_max=0.1))
app = FastAPI(lifespan=afterward.lifespan)


def greet(name: str) -> None:
    log.warning("greeting %s", name)


def flaky(name: str) -> None:
    log.warning("about to fail for %s", name)
    raise RuntimeError(f"flaky task fails for {name}")


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/run/{name}")
def run(name: str, background_tasks: BackgroundTasks) -> dict[str, str]:
    background_tasks.add_task(greet, name)
    background_tasks.add_task(flaky, name)
    return {"status": "stored"}
