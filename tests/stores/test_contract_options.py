"""Every store refuses, at enqueue, a task a worker could not run or a store could not
order, with the same error naming the value; nothing of a refused batch is stored, and
the queue goes on."""

from __future__ import annotations

import math
from typing import Any

import pytest

from afterward.errors import InvalidOption
from afterward.stores import Store

from ._helpers import LEASE, Clock, new_job

BAD: list[tuple[dict[str, Any], str]] = [
    ({"priority": "high"}, "priority must be a whole number"),
    ({"priority": 2**31}, "priority must be between"),
    ({"priority": 2**63 - 1}, "priority must be between"),
    ({"priority": True}, "priority must be a whole number"),
    ({"priority": 10**5000}, "integer of about 5000 digits"),
    ({"max_attempts": 0}, "max_attempts must be between 1"),
    ({"max_attempts": -1}, "max_attempts must be between 1"),
    ({"max_attempts": 2**31}, "max_attempts must be between 1"),
    ({"options": {"max_attempts": "many"}}, "max_attempts must be a whole number"),
    ({"options": {"time_limit": -1}}, "time_limit must be finite and above 0"),
    ({"options": {"time_limit": "soon"}}, "time_limit must be a number of seconds"),
    ({"options": {"backoff_base": -3}}, "backoff_base must be finite and 0 or more"),
    ({"options": {"backoff_max": float("inf")}}, "backoff_max must be finite"),
    ({"options": {"redact": "password"}}, "redact must list positions and names"),
    ({"options": []}, "options must be a mapping"),
    ({"queue": ""}, "queue must be a name of 1 to"),
    ({"queue": "q" * 201}, "queue must be a name of 1 to"),
    ({"queue": "a\x1b[2Jb"}, "queue must be printable"),
    ({"run_at": "soon"}, "run_at must be a time in seconds"),
    ({"run_at": math.nan}, "run_at must be a time in seconds"),
]


@pytest.mark.parametrize(("fields", "message"), BAD, ids=[m for _, m in BAD])
async def test_a_value_no_worker_accepts_is_refused_at_enqueue(
    store: Store, clock: Clock, fields: dict[str, Any], message: str
) -> None:
    # Given a batch holding one good task and one with a bad value
    good, bad = new_job(), _bad_job(fields)
    # When it is enqueued, Then the store refuses the batch, naming the value
    with pytest.raises(InvalidOption, match=message):
        await store.enqueue([good, bad], now=clock())
    # And nothing of it was stored; a later good task is taken as usual
    assert sum((await store.counts()).values()) == 0
    later = new_job()
    await store.enqueue([later], now=clock())
    taken = await store.acquire("w1", now=clock(), lease=LEASE, limit=5)
    assert [job.id for job in taken] == [later.id]


def _bad_job(fields: dict[str, Any]) -> Any:
    """A task with `fields` set after it is made (a row written around `add_task`)."""
    return new_job()._replace(**fields)
