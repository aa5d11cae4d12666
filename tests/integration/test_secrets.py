"""Parameters marked secret never show: not in `afterward show`, not in a refusal's
reason, on every store."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Annotated

from typer.testing import CliRunner

from afterward import Afterward, Job, JobState, Secret, task
from afterward.cli import app as cli
from afterward.testing import drain

TOKEN = "hunter2-very-secret"


def send_reset_mail(email: str, token: Annotated[str, Secret], when: dt.date) -> None:
    """Fails for the test: its arguments must still not show."""
    raise RuntimeError("mail server down")


# The list README shows: TaskOptions.redact is typed tuple[str, ...] in src (to widen there).
@task(redact=["api_key"])  # type: ignore[call-overload, untyped-decorator]
def call_partner(url: str, api_key: str) -> None:
    pass


def _show(url: str, task_id: str) -> str:
    result = CliRunner().invoke(cli, ["show", task_id, "--url", url], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


async def _given(store_url: str) -> tuple[str, str, str, Job]:
    """Tasks with a parameter marked secret by annotation and by @task(redact=...), and a
    row whose date cannot be decoded, quoting the secret in the bad value; all run."""
    afterward = Afterward(url=store_url, execution="workers", tasks=[send_reset_mail])
    try:
        marked = await afterward.enqueue(send_reset_mail, "a@example.com", TOKEN, dt.date.today())
        named = await afterward.enqueue(call_partner, "https://partner", api_key=TOKEN)
        job = afterward.prepare(send_reset_mail, ("a@example.com", TOKEN, dt.date.today()), {})
        payload = json.loads(job.payload)
        payload["args"][2] = f"not a date {TOKEN}"
        job = job._replace(payload=json.dumps(payload))
        (broken,) = await afterward.store.enqueue([job], now=0.0)
        await drain(afterward, raise_on_failure=False)
        refused = await afterward.get(broken)
    finally:
        await afterward.aclose()
    return marked, named, broken, refused


def test_secret_arguments_are_redacted_where_shown(store_url: str) -> None:
    # Given tasks with secret parameters, run (one refused)
    marked, named, _, refused = asyncio.run(_given(store_url))
    # Then show prints the other arguments but the secret as redacted
    for task_id in (marked, named):
        shown = _show(store_url, task_id)
        assert TOKEN not in shown
        assert "[redacted]" in shown
    assert "a@example.com" in _show(store_url, marked)
    # And the refused row's reason names the error, not the value
    assert refused.state is JobState.FAILED
    assert TOKEN not in (refused.last_error or "")
    assert "not shown: the task has secret parameters" in (refused.last_error or "")
