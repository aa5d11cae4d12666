"""A row can make a real worker process run only what the application chose (issue 16,
findings 1 and 2), on every store.

The app imports a library from a folder on PYTHONPATH, outside site-packages (as PyYAML
from a ``--target`` folder or Debian's dist-packages would be), and has an endpoint that
passes `send_receipt` to `add_task`. Rows written straight into the store name the
library's function with a shell command, the endpoint itself, and `send_receipt`.
"""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from pathlib import Path

from afterward import Afterward, Job, JobState
from afterward.calls.ids import new_task_id
from afterward.jobs import NewJob

from .procs import start_worker, stop, wait_until

APP = """
    from fastapi import FastAPI

    import outside_lib
    from afterward import Afterward
    from afterward.fastapi import BackgroundTasks

    afterward = Afterward(execution="workers")
    app = FastAPI(lifespan=afterward.lifespan)


    def send_receipt(path: str) -> None:
        open(path, "w").close()


    @app.post("/checkout")
    def checkout(path: str, background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(send_receipt, path)
        return {"library": outside_lib.__name__}
"""
LIBRARY = """
    import os


    def unsafe_load(command: str) -> None:
        os.system(command)
"""


async def _write(url: str, rows: list[tuple[str, list[str]]]) -> list[str]:
    afterward = Afterward(url=url, execution="workers")
    await afterward.open()
    try:
        jobs = [
            NewJob(id=new_task_id(), function=f, payload=json.dumps({"args": a}), max_attempts=1)
            for f, a in rows
        ]
        return await afterward.store.enqueue(jobs, now=time.time())
    finally:
        await afterward.aclose()


async def _read(url: str, ids: list[str]) -> list[Job]:
    afterward = Afterward(url=url, execution="workers")
    await afterward.open()
    try:
        return [await afterward.store.get(i) for i in ids]
    finally:
        await afterward.aclose()


def test_a_worker_runs_only_what_the_app_chose(tmp_path: Path, store_url: str) -> None:
    # Given an app importing a library from a folder outside site-packages
    (tmp_path / "rowapp.py").write_text(textwrap.dedent(APP))
    (tmp_path / "outside_lib.py").write_text(textwrap.dedent(LIBRARY))
    pwned, receipt = tmp_path / "pwned", tmp_path / "receipt"
    # And rows naming the library's function, the endpoint, and the app's task
    ids = asyncio.run(
        _write(
            store_url,
            [
                ("outside_lib:unsafe_load", [f"touch {pwned}"]),
                ("rowapp:checkout", [str(pwned)]),
                ("rowapp:send_receipt", [str(receipt)]),
            ],
        )
    )
    # When a worker process of that app takes them
    worker = start_worker(tmp_path, "rowapp:app", store_url)
    try:
        wait_until(
            lambda: all(j.state.is_terminal for j in asyncio.run(_read(store_url, ids))),
            30,
            "the three rows to finish",
        )
    finally:
        stop(worker)
    library, endpoint, chosen = asyncio.run(_read(store_url, ids))
    # Then the library's function and the endpoint were refused, naming why
    for refused in (library, endpoint):
        assert refused.state is JobState.FAILED
        assert "is not a task of this application" in (refused.last_error or "")
    assert not pwned.exists()
    # And the function the app's endpoint passes to add_task ran
    assert chosen.state is JobState.SUCCEEDED
    assert receipt.exists()
