"""The task model's decisions: failure, lost attempts, allowed transitions, terminal states."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from afterward.errors import InvalidOption, InvalidTransition
from afterward.jobs import (
    MAX_ERROR_TEXT,
    Job,
    JobState,
    NewJob,
    check_new_jobs,
    check_transition,
    decide_failure,
    decide_lost,
    describe,
    permanent_failure,
)
from afterward.retry import RetryPolicy

NOW = 1_800_000_000.0


def make_job(**changes: object) -> Job:
    job = Job(
        id="job-1",
        function="app.tasks:send",
        payload='{"args":[],"kwargs":{}}',
        queue="default",
        state=JobState.RUNNING,
        priority=0,
        run_at=NOW - 10,
        attempts=1,
        max_attempts=5,
        options={},
        chain_id=None,
        prev_id=None,
        next_id=None,
        unique_key=None,
        lease_owner="worker-7",
        lease_expires_at=NOW + 30,
        created_at=NOW - 20,
        finished_at=None,
        last_error=None,
        last_outcome=None,
    )
    return dataclasses.replace(job, **changes)  # type: ignore[arg-type]


def raised(error: BaseException) -> BaseException:
    """`error` after being raised and caught, so it carries a traceback."""
    try:
        raise error
    except BaseException as caught:
        return caught


class Transient(Exception):
    pass


@pytest.mark.parametrize("attempts", [1, 2, 3, 4])
def test_retryable_failure_with_attempts_left_is_scheduled_within_the_cap(attempts: int) -> None:
    # Given attempt n of 5 failing with a retryable error under base 1s / max 5s
    policy = RetryPolicy(backoff_base=1.0, backoff_max=5.0)
    job = make_job(attempts=attempts)
    cap = min(5.0, 2 ** (attempts - 1))
    rng = random.Random(attempts)
    # When the failure is decided many times
    for _ in range(200):
        failure = decide_failure(job, raised(Transient("try later")), policy, NOW, rng)
        # Then it is retried at a time after now and at most the backoff cap away
        assert failure.retry_at is not None
        assert NOW < failure.retry_at <= NOW + cap
        assert failure.error == "Transient: try later"


def test_failure_of_the_last_attempt_is_final() -> None:
    # Given the fifth of five attempts failing with a retryable error
    job = make_job(attempts=5, max_attempts=5)
    # When the failure is decided
    failure = decide_failure(job, raised(Transient("again")), RetryPolicy(), NOW)
    # Then there is no retry
    assert failure.retry_at is None
    assert failure.error == "Transient: again"


def test_the_jobs_stored_max_attempts_wins_over_the_policy() -> None:
    # Given a job stored with 2 attempts, under a policy that allows 10
    job = make_job(attempts=2, max_attempts=2)
    # When its second attempt fails
    failure = decide_failure(job, raised(Transient()), RetryPolicy(max_attempts=10), NOW)
    # Then it is final
    assert failure.retry_at is None


def test_non_retryable_error_is_final_even_with_attempts_left() -> None:
    # Given a policy that only retries Transient, and the first attempt failing otherwise
    policy = RetryPolicy(retry_on=(Transient,))
    job = make_job(attempts=1, max_attempts=5)
    # When the failure is decided
    failure = decide_failure(job, raised(KeyError("user-9")), policy, NOW)
    # Then there is no retry
    assert failure.retry_at is None
    assert failure.error == "KeyError: 'user-9'"


def test_failure_traceback_names_the_exception_and_where_it_was_raised() -> None:
    # Given an error raised in this module
    error = raised(ValueError("bad row 42"))
    # When the failure is decided
    failure = decide_failure(make_job(), error, RetryPolicy(), NOW, random.Random(0))
    # Then the traceback text holds the exception and the raising function
    assert "Traceback (most recent call last)" in failure.traceback
    assert "ValueError: bad row 42" in failure.traceback
    assert "in raised" in failure.traceback


def test_describe_without_message_is_the_class_name() -> None:
    # Given errors with and without a message
    # When they are described
    # Then the line is "Name: message", or just the name
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(Transient("x")) == "Transient: x"


@pytest.mark.parametrize(
    ("dead", "cause"),
    [(True, "the worker running it died"), (False, "its lease expired")],
)
def test_lost_attempt_with_attempts_left_is_queued_now(dead: bool, cause: str) -> None:
    # Given attempt 2 of 5, due 10 s ago, whose worker died or stopped renewing
    job = make_job(attempts=2, max_attempts=5, lease_owner="host:123")
    # When the loss is decided
    failure = decide_lost(job, NOW, dead=dead)
    # Then it runs again at once, keeping its place in line (its old due time, not the
    # back of the queue), and the error says why, naming worker and attempt
    assert failure.retry_at == job.run_at == NOW - 10
    assert failure.error.startswith("WorkerLost: ")
    assert cause in failure.error
    assert "host:123" in failure.error
    assert "attempt 2" in failure.error
    assert failure.traceback == ""


@pytest.mark.parametrize("dead", [True, False])
def test_lost_last_attempt_is_final(dead: bool) -> None:
    # Given the last attempt lost
    job = make_job(attempts=3, max_attempts=3)
    # When the loss is decided
    failure = decide_lost(job, NOW, dead=dead)
    # Then the task fails for good (a task that kills its process cannot loop for ever)
    assert failure.retry_at is None
    assert "WorkerLost" in failure.error


def test_permanent_failure_never_retries() -> None:
    # Given a reason no retry can fix
    # When a permanent failure is made
    failure = permanent_failure("UnknownFunction: app:gone")
    # Then it has the reason and no retry
    assert failure.error == "UnknownFunction: app:gone"
    assert failure.retry_at is None


CANCELLABLE = {JobState.QUEUED, JobState.SCHEDULED, JobState.WAITING}
RETRYABLE = {JobState.FAILED, JobState.CANCELLED}


@pytest.mark.parametrize("state", sorted(CANCELLABLE))
def test_cancel_is_allowed_before_the_task_runs(state: JobState) -> None:
    # Given a task that has not started
    # When cancelling is checked
    # Then it is allowed (no error)
    check_transition(state, "cancel", "job-1")


@pytest.mark.parametrize("state", sorted(set(JobState) - CANCELLABLE))
def test_cancel_is_refused_once_running_or_finished(state: JobState) -> None:
    # Given a task running or finished
    # When cancelling is checked
    # Then it is refused, naming the task, its state, and the states that allow it
    with pytest.raises(InvalidTransition) as info:
        check_transition(state, "cancel", "job-1")
    message = str(info.value)
    assert f"it is {state.value}" in message
    assert "cannot cancel task job-1" in message
    assert "queued, scheduled, waiting" in message


@pytest.mark.parametrize("state", sorted(RETRYABLE))
def test_retry_is_allowed_for_failed_and_cancelled(state: JobState) -> None:
    # Given a failed or cancelled task
    # When retrying is checked
    # Then it is allowed
    check_transition(state, "retry", "job-1")


@pytest.mark.parametrize("state", sorted(set(JobState) - RETRYABLE))
def test_retry_is_refused_for_other_states(state: JobState) -> None:
    # Given a task that is waiting, queued, scheduled, running or succeeded
    # When retrying is checked
    # Then it is refused with a message naming its state
    with pytest.raises(InvalidTransition, match=f"it is {state.value};") as info:
        check_transition(state, "retry", "job-9")
    assert "cannot retry task job-9" in str(info.value)
    assert "cancelled, failed can be retried" in str(info.value)


@pytest.mark.parametrize("state", list(JobState))
def test_is_terminal(state: JobState) -> None:
    # Given any state
    # When asked whether it is terminal
    # Then only succeeded, failed and cancelled are
    expected = state in {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
    assert state.is_terminal is expected


def test_states_are_their_stored_strings() -> None:
    # Given the state enum
    # When compared to the strings stores keep
    # Then they are equal (StrEnum) and the set is the documented one
    assert JobState("running") is JobState.RUNNING
    queued: str = JobState.QUEUED
    assert queued == "queued"
    assert {s.value for s in JobState} == {
        "waiting",
        "queued",
        "scheduled",
        "running",
        "succeeded",
        "failed",
        "cancelled",
    }


def test_a_new_job_with_a_nan_run_at_is_refused_before_any_store_writes_it() -> None:
    # Given a run_at that compares false with every time (it would never become due)
    job = NewJob(id="job-nan", function="m:f", payload="{}", run_at=math.nan, max_attempts=1)
    # When a batch holding it is checked, as every store's enqueue does, Then it is refused
    with pytest.raises(InvalidOption, match="run_at must be a time in seconds"):
        check_new_jobs([job])
    # And infinite or far times stay allowed: never due, but cancellable
    check_new_jobs([job._replace(run_at=math.inf)])


def test_a_new_job_is_a_value_no_one_changes() -> None:
    # Given a task to enqueue
    job = NewJob(id="j", function="m:f", payload="{}", max_attempts=1)
    # When code tries to change it, Then it cannot
    with pytest.raises(AttributeError):
        job.queue = "other"  # type: ignore[misc]
    # And linking it into a chain makes a new value, leaving it as it was
    link = job.linked("chain", "prev")
    assert (link.chain_id, link.prev_id, job.chain_id, job.prev_id) == ("chain", "prev", None, None)


def test_a_huge_error_is_cut_to_the_cap_with_a_note() -> None:
    # Given an attempt failing with a 20 MB message
    huge = "x" * (20 * 1024 * 1024)
    failure = decide_failure(make_job(), raised(ValueError(huge)), RetryPolicy(), NOW)
    # Then the error and traceback kept are cut to the cap, saying how much was cut
    for text in (failure.error, failure.traceback):
        assert len(text) < MAX_ERROR_TEXT + 100
        assert text.endswith("more characters not stored)")
    assert permanent_failure(huge).error.startswith("x" * 1000)
    assert len(permanent_failure(huge).error) < MAX_ERROR_TEXT + 100
