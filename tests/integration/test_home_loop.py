"""An app's store and runner live on one event loop, its home (`afterward.home`): calls
from another loop go there while it runs, and the next loop becomes home once it ended."""

from __future__ import annotations

import asyncio
import threading

from fastapi import FastAPI
from fastapi.testclient import TestClient

from afterward import Afterward, JobState
from afterward.fastapi import BackgroundTasks
from afterward.testing import drain_blocking

from . import apps


def _app(afterward: Afterward) -> FastAPI:
    app = FastAPI(lifespan=afterward.lifespan)

    @app.post("/record/{word}")
    def record(word: str, background_tasks: BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(apps.record, "home", word)
        return {"word": word}

    return app


def test_calls_from_another_loop_run_on_the_home_loop(store_url: str) -> None:
    # Given a workers-mode app whose lifespan made the TestClient's loop its home
    afterward = Afterward(url=store_url, execution="workers")
    apps.EVENTS.clear()
    with TestClient(_app(afterward)) as client:
        home = afterward.home.loop
        assert home is not None and home.is_running()
        # When this thread's own loops enqueue, drain and read while home runs
        assert client.post("/record/one").status_code == 200
        ran_on: list[asyncio.AbstractEventLoop | None] = []

        async def enqueue_here() -> str:
            ran_on.append(asyncio.get_running_loop())
            return await afterward.enqueue(apps.record, "home", "two")

        task_id = asyncio.run(enqueue_here())
        assert drain_blocking(afterward) == []
        job = asyncio.run(afterward.get(task_id))
        # Then each call ran at home, and the home did not move
        assert ran_on[0] is not home and afterward.home.loop is home
        assert job.state is JobState.SUCCEEDED
        assert apps.EVENTS == [("home", "one"), ("home", "two")]
    # And the lifespan's end closed it: no home is left
    assert afterward.home.loop is None


def test_the_next_loop_becomes_home_once_the_last_one_ended(store_url: str) -> None:
    # Given an app used from one loop, which then ended
    afterward = Afterward(url=store_url, execution="workers")
    first = asyncio.run(afterward.enqueue(apps.record, "home", "a"))
    assert afterward.home.loop is None  # its shutdown left
    # When loops in other threads use it, one after another
    ids: list[str] = []
    for word in ("b", "c"):
        thread = threading.Thread(
            target=lambda w=word: ids.append(asyncio.run(afterward.enqueue(apps.record, "h", w)))
        )
        thread.start()
        thread.join(30)
    # Then each worked, and so does one more here
    states = asyncio.run(_states(afterward, [first, *ids]))
    assert states == [JobState.QUEUED] * 3
    asyncio.run(afterward.aclose())


async def _states(afterward: Afterward, ids: list[str]) -> list[JobState]:
    return [(await afterward.get(i)).state for i in ids]
