"""Test-only fault points: the fault suite kills the process at a named step of a request.

Inactive (one string comparison) unless the environment variable
``AFTERWARD_FAULT_KILL_AT=<point>:<probability>`` was set when the process started; then
reaching `<point>` SIGKILLs this process with that probability. Points: ``before_commit``
and ``after_commit`` (after the endpoint returned, around storing its tasks; before the
response) and ``after_response`` (before the request's tasks start); the suite's own task
handles ``while_running``. Never set it in production.
"""

from __future__ import annotations

import os
import random
import signal

__all__ = ["reach"]

_POINT, _, _PROBABILITY = os.environ.get("AFTERWARD_FAULT_KILL_AT", "").partition(":")


def reach(point: str) -> None:
    """SIGKILL this process if the fault suite asked for it at `point`."""
    if _POINT and point == _POINT and random.random() < float(_PROBABILITY or 1):
        os.kill(os.getpid(), signal.SIGKILL)
