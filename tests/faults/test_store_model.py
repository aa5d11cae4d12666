"""Model-based tests of the stores: a Hypothesis state machine, and one program on every store.

`StoreModel` drives one store through the `Store` protocol only, on a fake clock, with three
worker slots (a killed worker comes back under a new name, as a restarted process does).
Each rule predicts, from the tasks as last read back with `Store.get`, what the store must
answer and how every task must change; after every step the invariants read the whole store
back and compare it with those predictions and with the rules of `afterward.jobs`.

`test_every_store_runs_a_program_alike` runs the same seeded random programs on SQLite,
PostgreSQL and Redis and compares everything they answer, down to the final tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import STORE_PARAMS
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test
from model_rules import StoreModel
from servers import require_server
from store_model import EXAMPLES
from store_programs import SEEDS, STORES, make_program, run_program

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("make_url", STORE_PARAMS)
def test_store_follows_the_model(make_url: Callable[[Path], str], tmp_path: Path) -> None:
    make_url(tmp_path)  # skips (or fails, in CI) when the store's server is unreachable
    machine = type(f"StoreModel_{make_url.__name__}", (StoreModel,), {"make_url": make_url})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=40,
            deadline=None,
            database=None,
            print_blob=True,
        ),
    )


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("seed", SEEDS)
def test_every_store_runs_a_program_alike(seed: int) -> None:
    require_server("postgres")
    require_server("redis")
    program = make_program(seed)
    answers = {name: run_program(make_url, program) for name, make_url in STORES.items()}
    reference = answers.pop("sqlite")
    for name, theirs in answers.items():
        for n, (ours, other) in enumerate(zip(reference, theirs, strict=True)):
            step = program[n] if n < len(program) else ("final get of every task",)
            assert other == ours, f"seed {seed}, step {n} {step}: sqlite {ours!r}, {name} {other!r}"
