"""The lesson's first background-task example, with only the import changed.

``from fastapi import FastAPI, BackgroundTasks`` became ``from fastapi import FastAPI`` plus
``from afterward.fastapi import BackgroundTasks``. Everything else is the lesson's code: the
task is now committed to ``afterward.db`` (in the working directory) before the response,
and still runs right after it in this process, so `TestClient` returns once it is done.

Run it (it prints the lesson's three lines and leaves ``afterward.db`` behind)::

    python examples/lesson_notify.py
"""

from fastapi import FastAPI

from afterward.fastapi import BackgroundTasks

app = FastAPI()
LOG = []


def write_log(message: str):
    LOG.append(message)


@app.post("/notify")
def notify(email: str, background_tasks: BackgroundTasks):
    background_tasks.add_task(write_log, f"sent welcome email to {email}")
    return {"status": "accepted", "email": email}


if __name__ == "__main__":
    from fastapi.testclient import TestClient

    client = TestClient(app)
    response = client.post("/notify?email=ada@example.com")
    print(response.status_code)
    print(response.json())
    print(LOG)
