"""A demo you can watch: the lesson's create-task app, with tasks you can see run.

Zero configuration: tasks go to ``afterward.db`` in the working directory and run in this
process right after each response. ``GET /`` is a page listing recent tasks (refreshed
every half second) with a button that creates one; the email task takes about a second,
so you can watch it go waiting → running → succeeded. The console logs each task (and leaves
out the page's own polling requests).

Run it from the repository root::

    uvicorn examples.demo:app

and open http://127.0.0.1:8000/, or ``curl -X POST 'localhost:8000/tasks?title=Ship+release'``
then ``curl localhost:8000/tasks`` (``afterward ls`` lists the same tasks).
"""

import asyncio
import logging

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from afterward import Afterward
from afterward.fastapi import BackgroundTasks
from afterward.stores import JobFilter

EMAIL_SECONDS = 1.0

log = logging.getLogger("demo")
# afterward shows its own lines (with time and level) by default; this shows the demo's
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


class _NotPolling(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return '"GET /tasks HTTP' not in record.getMessage()


logging.getLogger("uvicorn.access").addFilter(_NotPolling())
afterward = Afterward()
app = FastAPI(lifespan=afterward.lifespan)


def write_audit(action: str) -> None:
    log.info("audit: %s", action)


async def send_email(to: str, title: str) -> None:
    log.info("sending the email about %r to %s (takes %.0f s)...", title, to, EMAIL_SECONDS)
    await asyncio.sleep(EMAIL_SECONDS)  # stands in for a slow mail server
    log.info("email about %r sent to %s", title, to)


@app.post("/tasks")
def create_task(title: str, background_tasks: BackgroundTasks) -> dict[str, object]:
    audit = background_tasks.add_task(write_audit, f"created task {title!r}")
    email = background_tasks.add_task(send_email, "ada@example.com", title)
    return {"status": "created", "title": title, "tasks": [audit.id, email.id]}


@app.get("/tasks")
async def recent_tasks(limit: int = 20) -> list[dict[str, object]]:
    await afterward.open()  # already open under uvicorn (the lifespan opens it)
    jobs = await afterward.store.list(JobFilter(), limit=limit)
    return [
        {
            "id": job.id,
            "function": job.function.rpartition(":")[2],
            "state": job.state.value,
            "attempts": job.attempts,
            "created_at": job.created_at,
            "last_error": job.last_error,
        }
        for job in jobs
    ]


PAGE = """<!doctype html>
<title>afterward demo</title>
<style>body{font:15px system-ui;margin:2em}td,th{padding:.2em 1em;text-align:left}
.succeeded{color:green}.running{color:darkorange}.failed{color:red}.waiting{color:gray}</style>
<h1>afterward demo</h1>
<form onsubmit="create(event)"><input id="title" value="Ship release">
<button>Create task</button></form>
<table><thead><tr><th>task</th><th>function</th><th>state</th><th>attempts</th></tr></thead>
<tbody id="rows"></tbody></table>
<script>
async function create(e) {
  e.preventDefault();
  const title = encodeURIComponent(document.getElementById("title").value);
  await fetch("/tasks?title=" + title, {method: "POST"});
}
async function refresh() {
  const jobs = await (await fetch("/tasks")).json();
  document.getElementById("rows").innerHTML = jobs.map(j =>
    `<tr><td>${j.id.slice(-8)}</td><td>${j.function}</td>` +
    `<td class="${j.state}">${j.state}</td><td>${j.attempts}</td></tr>`).join("");
}
refresh(); setInterval(refresh, 500);
</script>
"""


@app.get("/", response_class=HTMLResponse)
def index() -> str:
    return PAGE
