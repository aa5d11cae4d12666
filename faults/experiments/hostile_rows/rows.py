"""The fuzzed rows of the hostile-rows experiment: the hostile values of each kind, the
`Row` they make, and `fuzz`, which mixes them with valid rows."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from afterward.calls.ids import new_task_id
from afterward.errors import InvalidOption
from afterward.jobs import NewJob
from afterward.options import StoredOptions

VALID_SHARE = 0.2
WORK = "faults.app:work"
MB = 1024 * 1024
LIBRARY = "outside_lib"
"""The library the app imports from a folder outside site-packages (its code: `LIBRARY_CODE`
in `.experiment`); the rows name its `run`, which the app never registers."""

FOREIGN = [
    "os:system",
    "builtins:eval",
    "subprocess:Popen",
    "os.system",
    "builtins.eval",
    "subprocess.Popen",
    "builtins:exec",
    "builtins:__import__",
    "evil_module:run",
    "antigravity:fly",
    "faults.app:os",
    "faults.app:record",
    "\u202efaults.app:work",
    "faults.app:work\x00",
    "f" * (2 * MB) + ":x",
    "faults.app:" + "w" * MB,
    "subprocess:run",
    "posix:system",
    "importlib:import_module",
    "ctypes:string_at",
    "shutil:rmtree",
    "pickle:loads",
    "sys:exit",
    "this:s",
    "faults.app:ctypes",
    "faults.app:afterward",
    "faults.app:Afterward",
    "faults.app:task",
    "faults.app:__import__",
    "faults.app:__builtins__",
    "faults:app",
    "faults.app:work.__globals__",
    "afterward.calls.preparer:new_task_id",
    "afterward.testing:drain",
    ":",
    "",
    "faults.app:",
    ":work",
    "faults.app:work:work",
    "../../etc/passwd:x",
    "faults.app:wörk",
    "faults.app:work\u200b",
    "faults.app:not_a_task",
    "faults.ledger:record",
    f"{LIBRARY}:run",
]
"""Function names no worker may run (every one outside the registry)."""

NOT_JSON = [
    "",
    "nope",
    "{",
    "[1, 2",
    '{"args": ["k", 1]',
    "{'args': ['k', 1]}",
    "\ufeff" + '{"args": ["k", 1]}',
    '{"args": ["a\x00b", 1]}',
    '{"args": ["k", 1]} trailing',
    "\x00",
    "\ud800",
]
WRONG_SHAPE = [
    "null",
    "true",
    "[]",
    "{}",
    '"args"',
    "1e999999",
    "NaN",
    '{"args": "k"}',
    '{"args": null}',
    '{"args": {"key": "k", "ms": 1}}',
    '{"kwargs": {"key": "k", "ms": 1}}',
    '{"args": ["k", 1], "kwargs": []}',
    '{"args": ["k", 1], "kwargs": "x"}',
]
WRONG_ARGS: list[Any] = [
    {"args": [123, 1]},
    {"args": [None, 1]},
    {"args": [[], 1]},
    {"args": [{}, 1]},
    {"args": [True, 1]},
    {"args": ["k", "abc"]},
    {"args": ["k", []]},
    {"args": ["k", None]},
    {"args": ["k", {}]},
    {"args": ["k", [1]]},
    {"args": []},
    {"args": ["k"]},
    {"args": ["k", 1, 2]},
    {"args": ["k", 1], "kwargs": {"evil": 1}},
    {"args": ["k", 1], "kwargs": {"key": "k"}},
    {"args": ["k", 1], "kwargs": {"__class__": 1}},
    {"args": ["\U0001d518\U0001d52b\u202e zero\u200bwidth", "\U0001f642"]},
]
RUNTIME = [
    '{"args": ["k", NaN]}',
    '{"args": ["k", Infinity]}',
    '{"args": ["k", -Infinity]}',
    '{"args": ["k", 1e308]}',
    '{"args": ["k", -5]}',
    '{"args": ["k", 1e999]}',
]
"""Well-typed calls `work` itself fails on (``time.sleep`` refuses the value): ordinary
failed attempts, retried until their (small) max attempts are spent."""
OPTIONS: list[dict[str, Any]] = [
    {"max_attempts": "many"},
    {"max_attempts": None},
    {"max_attempts": 0},
    {"time_limit": -1},
    {"time_limit": "soon"},
    {"time_limit": [1]},
    {"backoff_base": -3},
    {"backoff_max": 1e400},
]
"""Retry options no policy can be made of (written with a valid payload)."""

EXTREME_PRIORITIES = [2**63 - 1, -(2**63), 2**31 - 1, -(2**31), 2**31, 2**64]
EXTREME_RUN_AT = [-1e12, 0.0, -math.inf, 1.0]
"""``run_at`` times long past (due at once)."""
NEVER_RUN_AT = [1e12, 1e300, math.inf]
"""``run_at`` times that never come (stay `scheduled`, cancellable). NaN is not among them:
every store's enqueue refuses it, so no store orders a time that compares with nothing."""


@dataclass
class Row:
    """One fuzzed row and what must become of it."""

    kind: str
    """valid, foreign, not_json, wrong_shape, wrong_args, runtime, options, huge."""
    job: NewJob

    @property
    def never_due(self) -> bool:
        return self.job.run_at is not None and not self.job.run_at <= 1e11

    @property
    def valid(self) -> bool:
        return self.kind == "valid"


def _payload(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False)


def _huge(variant: int) -> str:
    """A payload for `work` of a huge or deep kind (all refused)."""
    if variant == 0:
        return '{"args": ["k", "' + "x" * (3 * MB) + '"]}'
    if variant == 1:
        return '{"args": [' + json.dumps(["x"] * 400_000) + ", 1]}"
    if variant == 2:
        return _payload({"args": ["k", 1], "kwargs": {f"k{n}": n for n in range(100_000)}})
    if variant == 3:
        return '{"args": ["k", 1' + "0" * 100_000 + "]}"
    if variant in (4, 5):
        depth = 800 if variant == 4 else 100_000
        return '{"args": [' + "[" * depth + "]" * depth + ", 1]}"
    return '{"args": ["k", 1], "kwargs": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}"


HUGE_VARIANTS = 7
KINDS = [
    "foreign",
    "not_json",
    "wrong_args",
    "huge",
    "wrong_shape",
    "runtime",
    "foreign",
    "options",
    "wrong_args",
    "not_json",
]
"""Hostile kinds in turn (each kind walks its own list in order, so that a small run
covers the head of every list)."""


class Hostile:
    """Hostile rows, each kind's values in turn."""

    def __init__(self, folder: Path) -> None:
        self._command = _payload({"args": [f"touch {folder}/pwned"]})
        self._kinds = itertools.cycle(KINDS)
        self._next: dict[str, Iterator[Any]] = {
            "foreign": itertools.cycle(FOREIGN),
            "not_json": itertools.cycle(NOT_JSON),
            "wrong_shape": itertools.cycle(WRONG_SHAPE),
            "wrong_args": itertools.cycle(WRONG_ARGS),
            "runtime": itertools.cycle(RUNTIME),
            "options": itertools.cycle(OPTIONS),
            "huge": itertools.cycle(range(HUGE_VARIANTS)),
        }

    def row(self) -> tuple[str, str, str, dict[str, Any]]:
        """(kind, function, payload, options) of the next hostile row."""
        kind = next(self._kinds)
        value = next(self._next[kind])
        if kind == "foreign":
            return kind, value, self._command, {}
        if kind == "wrong_args":
            return kind, WORK, _payload(value), {}
        if kind == "runtime":
            return kind, WORK, value, {"backoff_base": 0.05, "backoff_max": 0.2, "time_limit": 10}
        if kind == "options":
            return kind, WORK, _payload({"args": ["opt", 1]}), value
        if kind == "huge":
            return kind, WORK, _huge(value), {}
        return kind, WORK, value, {}


def fuzz(count: int, folder: Path, seed: int = 8) -> list[Row]:
    """`count` rows, about `VALID_SHARE` of them valid."""
    rng = random.Random(seed)
    hostile = Hostile(folder)
    rows = []
    options: dict[str, Any]
    for n in range(count):
        if rng.random() < VALID_SHARE:
            kind, function, options = "valid", WORK, {}
            payload = _payload({"args": [f"v{n}", rng.uniform(1, 5)]})
        else:
            kind, function, payload, options = hostile.row()
        runtime = kind in ("valid", "runtime")
        draw = rng.random()
        run_at = (
            rng.choice(NEVER_RUN_AT)
            if draw < 0.05
            else rng.choice(EXTREME_RUN_AT)
            if draw < 0.2
            else None
        )
        job = NewJob(
            id=new_task_id(),
            function=function,
            payload=payload,
            priority=rng.choice(EXTREME_PRIORITIES) if rng.random() < 0.15 else 0,
            run_at=run_at,
            max_attempts=rng.choice([1, 2, 3] if runtime else [0, -1, 1, 5, 2**31 - 1]),
        )
        rows.append(Row(kind, _with_options(job, options)))
    return rows


def _with_options(job: NewJob, options: dict[str, Any]) -> NewJob:
    """`job` with `options`: checked as `add_task` checks them, or, where they would be
    refused, set around that check (a row written by other code), for the store's own
    check at enqueue to refuse."""
    try:
        checked = StoredOptions(options)
    except InvalidOption:
        return job._replace(options=options)  # type: ignore[arg-type]
    return job._replace(options=checked)


def valid_rows(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.valid]


def _key(row: Row) -> str:
    return str(json.loads(row.job.payload)["args"][0])
