"""The lesson's second example: two tasks, one sync and one async, run in the order added.

Only the import changed from the lesson (``BackgroundTasks`` comes from
``afterward.fastapi``). The two tasks are stored as one chain before the response, so the
email task cannot start before the audit task has succeeded, in this process or any other.

Run it (it prints the lesson's three lines and leaves ``afterward.db`` behind)::

    python examples/lesson_tasks.py
"""

import asyncio

from fastapi import FastAPI

from afterward.fastapi import BackgroundTasks

app = FastAPI()
LOG = []


def write_audit(action: str):
    LOG.append(f"audit: {action}")


async def send_email(to: str):
    await asyncio.sleep(0)  # stands in for real async I/O
    LOG.append(f"email queued for {to}")


@app.post("/tasks")
def create_task(title: str, background_tasks: BackgroundTasks):
    background_tasks.add_task(write_audit, f"created task {title!r}")
    background_tasks.add_task(send_email, "ada@example.com")
    return {"status": "created", "title": title}


if __name__ == "__main__":
    from fastapi.testclient import TestClient

    client = TestClient(app)
    response = client.post("/tasks?title=Ship+release")
    print(response.status_code)
    print(response.json())
    print(LOG)
