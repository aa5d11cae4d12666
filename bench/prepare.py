"""What turning calls into tasks costs: `prepare_many` of a task shaped as the bench's
no-op task (one float argument), in µs a task, with issue 15's round-trip check and with
its fast path forced to pass (what the check costs a bulk enqueue).

    .venv/bin/python -m bench.prepare [--rounds 3]

One process; each figure is the min and median of 7 timings of 20 batches of 500.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import afterward.calls.preparer as preparer
from afterward import Afterward, task
from afterward.calls.serialization import decodes_unchanged

CHECK = "decodes_unchanged"
"""The round-trip check's fast path, as the preparer calls it."""


@task
async def work(enqueued_at: float) -> None:
    """Never run: only prepared."""


def timed(prepare: Callable[[], Any]) -> tuple[float, float]:
    """Min and median µs a task over 7 timings of 20 batches of 500."""
    per_task = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(20):
            prepare()
        per_task.append((time.perf_counter() - start) / 10_000 * 1e6)
    return min(per_task), statistics.median(per_task)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        app = Afterward(url=f"sqlite:///{folder}/prepare.db")
        calls = [(time.time(),) for _ in range(500)]

        def prepare() -> Any:
            return app.calls.prepare_many(work, calls)

        prepare()  # the template is made once, outside the timings
        for _ in range(args.rounds):
            with_check = timed(prepare)
            setattr(preparer, CHECK, lambda *_: True)
            try:
                without = timed(prepare)
            finally:
                setattr(preparer, CHECK, decodes_unchanged)
            print(
                f"with the check {with_check[0]:.2f} / {with_check[1]:.2f} µs a task, "
                f"without {without[0]:.2f} / {without[1]:.2f} (min / median)"
            )


if __name__ == "__main__":
    main()
