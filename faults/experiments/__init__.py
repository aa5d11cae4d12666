"""One module per experiment; each has ``run(store, folder, size) -> (Result, urls)``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..harness import Result
from ..sizes import Size
from . import graceful, kill_storm, long_tasks, store_restart, zombie

Experiment = Callable[[str, Path, Size], tuple[Result, list[str]]]

EXPERIMENTS: dict[str, Experiment] = {
    "kill_storm": kill_storm.run,
    "store_restart": store_restart.run,
    "zombie": zombie.run,
    "long_tasks": long_tasks.run,
    "graceful": graceful.run,
}
"""Name (for ``--only``) → experiment, in the order of the issue's list."""
