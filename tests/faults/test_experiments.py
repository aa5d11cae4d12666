"""The CI-sized run of every fault experiment on every store: each must lose nothing and
pass its own checks. (The full-size run is `python -m faults --size full`.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import require_server

from faults.experiments import EXPERIMENTS, as_list
from faults.harness import STORES, drop_store, show
from faults.sizes import CI

pytestmark = pytest.mark.slow


@pytest.fixture(params=STORES)
def kind(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param != "sqlite":
        require_server(request.param)
    yield request.param


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_experiment(name: str, kind: str, tmp_path: Path) -> None:
    outcome, urls = EXPERIMENTS[name](kind, tmp_path, CI)
    try:
        results = as_list(outcome)
        show(results)
        for result in results:
            assert result.lost == 0, f"{result.experiment}: {result.lost} accepted task(s) lost"
            failed = [check for check, ok in result.checks.items() if not ok]
            assert failed == [], f"{result.experiment}: checks failed: {failed}"
    finally:
        for url in urls:
            drop_store(url)
