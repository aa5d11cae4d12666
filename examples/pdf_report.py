"""Exercise 3: a heavy report that has outgrown in-process background tasks.

Generating a 200-page PDF and emailing it is slow and CPU-bound: in the web process it
competes with live requests, and with plain BackgroundTasks a deploy loses the reports
still being built. Here the app runs with ``Afterward(execution="workers")``: the request
only commits the task to the store (``AFTERWARD_URL``, default ``sqlite:///afterward.db``)
and answers at once with its id; separate worker processes take tasks from the
``reports`` queue, each attempt bounded by ``time_limit``, retried if it fails, and
handed back to the queue (not lost) if its worker is stopped.

Run it from the repository root, in two terminals::

    uvicorn examples.pdf_report:app
    afterward worker examples.pdf_report:app --queue reports

then ``curl -X POST 'localhost:8000/reports/q3?email=ada@example.com'`` and watch
``reports/q3.pdf`` and ``outbox.txt`` appear in the worker's working directory
(``afterward ls`` shows the task's state).
"""

import hashlib
import os

from fastapi import FastAPI

from afterward import Afterward, task
from afterward.fastapi import BackgroundTasks

PAGES = 200
REPORTS_DIR = "reports"
OUTBOX = "outbox.txt"

afterward = Afterward(execution="workers")
app = FastAPI(lifespan=afterward.lifespan)


def render_page(report_id: str, number: int) -> bytes:
    """Stands in for laying out one PDF page (some CPU work, a fixed-size page)."""
    digest = hashlib.sha256(f"{report_id}:{number}".encode()).hexdigest()
    body = f"%% {report_id} page {number}/{PAGES} {digest}\n"
    return body.encode().ljust(512, b".") + b"\n"


@task(queue="reports", max_attempts=3, time_limit=300)
def generate_and_email_report(report_id: str, email: str) -> None:
    """Build the 200-page report, save it, then "email" it (a line in the outbox)."""
    os.makedirs(REPORTS_DIR, exist_ok=True)
    pages = [render_page(report_id, n) for n in range(1, PAGES + 1)]
    path = os.path.join(REPORTS_DIR, f"{report_id}.pdf")
    with open(path, "wb") as pdf:
        pdf.write(b"%PDF-1.7 (simulated)\n")
        pdf.writelines(pages)
    with open(OUTBOX, "a") as outbox:
        outbox.write(f"to {email}: report {report_id} ({PAGES} pages) attached: {path}\n")


@app.post("/reports/{report_id}", status_code=202)
def request_report(report_id: str, email: str, background_tasks: BackgroundTasks) -> dict[str, str]:
    ref = background_tasks.add_task(generate_and_email_report, report_id, email)
    return {"status": "queued", "report_id": report_id, "task_id": ref.id}
