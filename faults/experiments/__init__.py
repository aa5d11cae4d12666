"""One module per experiment, registered in `EXPERIMENTS` in the order of the issue."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..harness import Result
from ..sizes import Size
from . import (
    disk_full,
    graceful,
    hostile_rows,
    kill_storm,
    long_tasks,
    poison,
    store_restart,
    web_kill,
    zombie,
)

Experiment = Callable[[str, Path, Size], tuple[Result | list[Result], list[str]]]
"""``run(store, folder, size)`` → its result (or one per variant) and the store URLs used."""


def as_list(outcome: Result | list[Result]) -> list[Result]:
    """An experiment's results as a list."""
    return outcome if isinstance(outcome, list) else [outcome]


EXPERIMENTS: dict[str, Experiment] = {
    "kill_storm": kill_storm.run,
    "web_kill": web_kill.run,
    "store_restart": store_restart.run,
    "zombie": zombie.run,
    "long_tasks": long_tasks.run,
    "graceful": graceful.run,
    "poison": poison.run,
    "hostile_rows": hostile_rows.run,
    "disk_full": disk_full.run,
}
"""Name (for ``--only``) → experiment, in the order of the issue's list."""
