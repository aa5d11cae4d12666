"""RetryPolicy: validation, full-jitter delays, which errors retry, what a store keeps."""

from __future__ import annotations

import random
from typing import Any

import pytest

from afterward.retry import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_TIME_LIMIT,
    RetryPolicy,
    exception_names,
)

SAMPLES = 2000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be between 1 and"),
        ({"max_attempts": -3}, "max_attempts must be between 1 and"),
        ({"backoff_base": -0.1}, "backoff_base must be finite and 0 or more"),
        ({"backoff_max": -1.0}, "backoff_max must be finite and 0 or more"),
        ({"time_limit": 0}, "time_limit must be finite and above 0"),
        ({"time_limit": -5.0}, "time_limit must be finite and above 0"),
        ({"max_attempts": True}, "max_attempts must be a whole number, not True"),
        ({"max_attempts": "3"}, "max_attempts must be a whole number, not '3'"),
        ({"max_attempts": 2**31}, "max_attempts must be between 1 and 2147483647"),
        ({"max_attempts": 10**5000}, "not an integer of about 5000 digits"),
        ({"backoff_base": float("nan")}, "backoff_base must be finite"),
        ({"backoff_max": "1"}, "backoff_max must be a number of seconds"),
        ({"time_limit": float("inf")}, "time_limit must be finite"),
        ({"retry_on": (ValueError, "x")}, "retry_on must be a tuple of exception classes"),
    ],
)
def test_invalid_policy_is_refused(kwargs: dict[str, Any], message: str) -> None:
    # Given settings no policy can honour
    # When a policy is built from them
    # Then it refuses with a message naming the setting
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)


def test_defaults_are_the_named_constants() -> None:
    # Given a policy built without arguments
    policy = RetryPolicy()
    # Then its numbers are the documented defaults and it retries any Exception
    assert policy.max_attempts == DEFAULT_MAX_ATTEMPTS
    assert policy.backoff_base == DEFAULT_BACKOFF_BASE
    assert policy.backoff_max == DEFAULT_BACKOFF_MAX
    assert policy.time_limit == DEFAULT_TIME_LIMIT
    assert policy.retry_on == (Exception,)


def test_edge_values_are_accepted() -> None:
    # Given the smallest allowed settings, and no time limit
    # When a policy is built from them
    policy = RetryPolicy(max_attempts=1, backoff_base=0, backoff_max=0, time_limit=None)
    # Then it is accepted, and its delay is always zero
    assert policy.time_limit is None
    assert policy.delay(3, random.Random(0)) == 0.0


def _samples(policy: RetryPolicy, attempt: int, seed: int = 1234) -> list[float]:
    rng = random.Random(seed)
    return [policy.delay(attempt, rng) for _ in range(SAMPLES)]


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 6, 8, 12])
def test_delay_lies_within_full_jitter_bounds(attempt: int) -> None:
    # Given a policy whose cap doubles from 1s and stops at 20s
    policy = RetryPolicy(backoff_base=1.0, backoff_max=20.0)
    cap = min(20.0, 1.0 * 2 ** (attempt - 1))
    # When many delays are drawn for one attempt
    delays = _samples(policy, attempt)
    # Then every one lies in [0, cap], and they spread over most of that range
    assert all(0.0 <= d <= cap for d in delays)
    assert min(delays) < 0.05 * cap
    assert max(delays) > 0.95 * cap


def test_delay_cap_grows_then_stays_at_backoff_max() -> None:
    # Given a policy with base 0.5s and max 10s
    policy = RetryPolicy(backoff_base=0.5, backoff_max=10.0)
    # When the largest of many delays is taken for successive attempts
    highest = [max(_samples(policy, n)) for n in range(1, 9)]
    # Then it roughly doubles while under the cap (0.5, 1, 2, 4, 8) ...
    for n, value in enumerate(highest[:5], start=1):
        assert 0.95 * 0.5 * 2 ** (n - 1) <= value <= 0.5 * 2 ** (n - 1)
    assert highest[0] < highest[1] < highest[2] < highest[3] < highest[4]
    # ... and never passes backoff_max after that
    for value in highest[5:]:
        assert 9.5 <= value <= 10.0


def test_delay_is_reproducible_with_a_seeded_rng() -> None:
    # Given two random sources with the same seed
    policy = RetryPolicy()
    # When delays are drawn from each
    # Then they are the same sequence
    assert _samples(policy, 4, seed=7) == _samples(policy, 4, seed=7)
    assert _samples(policy, 4, seed=7) != _samples(policy, 4, seed=8)


def test_delay_for_a_very_late_attempt_is_capped() -> None:
    # Given a policy with very many attempts (close to "retry for ever")
    policy = RetryPolicy(max_attempts=5000, backoff_base=1.0, backoff_max=60.0)
    # When the delay after attempt 2000 is drawn
    delay = policy.delay(2000, random.Random(3))
    # Then it is within backoff_max, like any other late attempt
    assert 0.0 <= delay <= 60.0


def test_delay_without_rng_uses_module_random() -> None:
    # Given a policy, and no random source passed
    policy = RetryPolicy(backoff_base=2.0, backoff_max=2.0)
    # When delays are drawn
    delays = [policy.delay(1) for _ in range(200)]
    # Then they still lie within the cap and are not all the same
    assert all(0.0 <= d <= 2.0 for d in delays)
    assert len(set(delays)) > 1


class TransientError(Exception):
    pass


class FatalError(Exception):
    pass


def test_retries_honours_retry_on() -> None:
    # Given a policy that retries only TransientError and OSError
    policy = RetryPolicy(retry_on=(TransientError, OSError))
    # When asked about various errors
    # Then it answers by exception kind, subclasses included
    assert policy.retries(TransientError("x"))
    assert policy.retries(ConnectionResetError("x"))
    assert not policy.retries(FatalError("x"))
    assert not policy.retries(ValueError("x"))


def test_default_policy_retries_exceptions_but_not_base_exceptions() -> None:
    # Given the default policy
    policy = RetryPolicy()
    # When asked about an Exception and a BaseException that is not one
    # Then only the Exception is retried
    assert policy.retries(RuntimeError("x"))
    assert not policy.retries(KeyboardInterrupt())


def test_to_json_holds_the_numbers_only() -> None:
    # Given a policy with custom numbers and exception kinds
    policy = RetryPolicy(
        max_attempts=3,
        backoff_base=0.25,
        backoff_max=9.0,
        time_limit=None,
        retry_on=(TransientError,),
    )
    # When it is turned into JSON
    stored = policy.to_json()
    # Then the numbers are kept and the exception classes are not
    assert stored == {
        "max_attempts": 3,
        "backoff_base": 0.25,
        "backoff_max": 9.0,
        "time_limit": None,
    }


@pytest.mark.parametrize("time_limit", [None, 12.5])
def test_with_stored_round_trip_keeps_retry_on(time_limit: float | None) -> None:
    # Given a code-side policy with its own retry_on, and another task's stored numbers
    code = RetryPolicy(retry_on=(TransientError, OSError))
    stored = RetryPolicy(
        max_attempts=2, backoff_base=3.0, backoff_max=4.0, time_limit=time_limit
    ).to_json()
    # When the stored numbers are applied to the code-side policy
    restored = code.with_stored(stored)
    # Then the numbers come from the store and retry_on from code
    assert restored.to_json() == stored
    assert restored.retry_on == (TransientError, OSError)
    assert code.with_stored(code.to_json()) == code


def test_with_stored_fills_missing_numbers_from_the_policy() -> None:
    # Given a stored dict from an older row that lacks some keys
    code = RetryPolicy(max_attempts=9, backoff_base=0.5, time_limit=None)
    # When it is applied
    restored = code.with_stored({"backoff_max": 7})
    # Then the missing numbers come from the code-side policy
    assert restored == RetryPolicy(
        max_attempts=9, backoff_base=0.5, backoff_max=7.0, time_limit=None
    )


def test_exception_names_are_dotted() -> None:
    # Given exception classes from the stdlib and this module
    # When their names are listed
    names = exception_names([OSError, TransientError])
    # Then each is module.qualname
    assert names == ["builtins.OSError", f"{__name__}.TransientError"]
