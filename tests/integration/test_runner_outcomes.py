"""The runner against a real SQLite store: refusals, retries and time limits."""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest

from afterward import Afterward, JobState, RetryPolicy, TaskFailed
from afterward.calls.ids import new_task_id
from afterward.jobs import NewJob
from afterward.testing import drain

from . import apps, runners

# pytest finds a shared fixture by a module-level name in the test module
afterward = runners.afterward

IMPORTS: list[str] = []
_AUDITING = {"on": False}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _AUDITING["on"] and event == "import":
        IMPORTS.append(str(args[0]))


sys.addaudithook(_audit)


@pytest.mark.parametrize(
    "function", ["os:system", "builtins:eval", "subprocess:Popen", "evil_module:run", "json:loads"]
)
async def test_row_naming_a_foreign_function_fails_without_importing(
    afterward: Afterward, function: str
) -> None:
    # Given a row written straight into the store naming a function the app never registered
    job = NewJob(
        id=new_task_id(),
        function=function,
        payload='{"args": ["touch /tmp/pwned"]}',
        max_attempts=5,
    )
    await afterward.store.enqueue([job], now=time.time())
    # When a worker runs due tasks, watched by an audit hook
    IMPORTS.clear()
    _AUDITING["on"] = True
    try:
        unsuccessful = await drain(afterward, raise_on_failure=False)
    finally:
        _AUDITING["on"] = False
    # Then the task failed for good at once, with a reason, and nothing was imported
    stored = await afterward.get(job.id)
    assert unsuccessful == [job.id]
    assert stored.state is JobState.FAILED
    assert stored.attempts == 1
    assert stored.last_error is not None and "UnknownFunction" in stored.last_error
    assert function.split(":")[0] in stored.last_error
    assert [m for m in IMPORTS if m.split(".")[0] in {"os", "subprocess", "evil_module"}] == []


async def test_malformed_payload_fails_with_a_reason(afterward: Afterward) -> None:
    # Given a registered function but a payload that is not valid JSON for it
    name = afterward.registry.name_of(apps.record)
    job = NewJob(id=new_task_id(), function=name, payload="{not json", max_attempts=5)
    await afterward.store.enqueue([job], now=time.time())
    # When it is drained, Then it fails for good with a readable reason and drain re-raises
    with pytest.raises(TaskFailed, match=r"JSONDecodeError|Expecting"):
        await drain(afterward)
    assert (await afterward.get(job.id)).state is JobState.FAILED


async def test_failed_attempts_retry_then_succeed_keeping_every_error(
    afterward: Afterward,
) -> None:
    # Given a task that fails twice before it succeeds (3 attempts allowed, no backoff)
    task_id = await afterward.enqueue(apps.flaky, "welcome-email", 2)
    # When due tasks are drained until nothing is due
    while await drain(afterward, raise_on_failure=False):
        pass
    # Then it succeeded on attempt 3 and both errors are kept with their tracebacks
    job = await afterward.get(task_id)
    assert job.state is JobState.SUCCEEDED
    assert [a.outcome for a in job.history] == ["failed", "failed", "succeeded"]
    assert all("ConnectionError: smtp down" in (a.error or "") for a in job.history[:2])
    assert all("Traceback" in (a.traceback or "") for a in job.history[:2])


async def test_exhausted_task_fails_and_blocks_its_chain_until_retried(
    afterward: Afterward,
) -> None:
    # Given a chain: a task that always fails, then one that records
    chain = [
        afterward.prepare(apps.always_fails, ("no smtp",), {}),
        afterward.prepare(apps.record, ("after",), {}),
    ]
    first, second = await afterward.enqueue_chain(chain, reserve=False)
    apps.EVENTS.clear()
    # When drained until nothing is due
    while await drain(afterward, raise_on_failure=False):
        pass
    # Then the first failed after 3 attempts and the second is still waiting
    failed = await afterward.get(first)
    assert failed.state is JobState.FAILED
    assert failed.attempts == 3
    assert (await afterward.get(second)).state is JobState.WAITING
    assert apps.EVENTS == []
    # When the failed task is retried
    await afterward.store.retry(first, now=time.time())
    # Then it is queued with a fresh budget
    again = await afterward.get(first)
    assert again.state is JobState.QUEUED
    assert again.max_attempts == again.attempts + 3


async def test_attempt_past_its_time_limit_fails_with_time_limit_exceeded(
    afterward: Afterward,
) -> None:
    # Given a task whose attempt must end within 0.1 s but sleeps for 5 s
    fast = Afterward(
        url=afterward.store.url,
        execution="workers",
        retry=RetryPolicy(max_attempts=1, time_limit=0.1),
    )
    task_id = await fast.enqueue(apps.sleeps, 5.0)
    # When it is drained
    started = time.monotonic()
    with pytest.raises(TaskFailed, match="TimeLimitExceeded"):
        await drain(fast)
    # Then it was stopped near the limit, not after the full sleep
    assert time.monotonic() - started < 4.0
    assert (await fast.get(task_id)).state is JobState.FAILED
    await fast.aclose()
