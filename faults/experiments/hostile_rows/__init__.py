"""Hostile rows: fuzzed rows written straight into the store (`Store.enqueue`), bypassing
`add_task`'s checks, with about a fifth of valid ones mixed in, through worker processes
whose every import and code execution outside what they had loaded at start is written
down by an audit hook (``AFTERWARD_FAULTS_AUDIT``, see `faults.app`).

Rows name foreign functions (``os:system``, ``builtins:eval``, ``subprocess:Popen``…),
functions the app never registered (``faults.app:not_a_task``, ``faults.ledger:record``,
and ``outside_lib:run`` of a library the app imports from a folder on PYTHONPATH, outside
site-packages), or call ``faults.app:work(key: str, ms: float)`` with payloads that are
not JSON, JSON of the wrong shape, arguments of the wrong types, huge or deeply nested
values, NaN and infinities, unicode junk, or junk retry options; rows get extreme
priorities and ``run_at`` times. Must hold: no worker process crashes; every hostile row
that comes due ends `failed` with a readable last error; every valid row succeeds; the
audit log stays empty and no command ran. A row whose ``run_at`` never comes (far future,
infinite) must never start and must stay cancellable: that is how it is handled. A row the
store refuses to write (its `enqueue` raises) must leave nothing behind; those are
counted.

Then, once those have settled, each corrupt row the store can hold (`faults.corrupt_rows`:
options that are not JSON, text in a time column, invalid UTF-8, a bogus state, an attempt
count at the integer limit…) is written with a good task right behind it in the same
queue: the corrupt row must end `failed` and the good one must finish within `STALL`
seconds (no queue stalls) of a fresh fleet's first worker being up: corrupt rows are made
by changing stored tasks in place, so they are written while no worker runs.
"""

from __future__ import annotations

from .experiment import run

__all__ = ["run"]
