"""Exactness at add_task: stored only when decoding gives equal values of the same types."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from afterward import Afterward
from afterward.calls.roundtrip import check_round_trip
from afterward.calls.serialization import decode_call, decodes_unchanged, encode_call
from afterward.errors import ArgumentNotExact


def write_notification(email: str, message: str = "") -> None: ...


def scale(factor: float) -> None: ...


def configure(config: dict[str, Any]) -> None: ...


def test_json_scalars_their_parameters_keep_skip_the_decode() -> None:
    # Given the lesson's task called with strings
    # When exactness is asked, Then it is known without decoding
    assert decodes_unchanged(write_notification, ("ada@example.com",), {"message": "hi"})
    # And a value its annotation would convert is not assumed unchanged
    assert not decodes_unchanged(write_notification, (3,), {})


def test_an_int_for_a_float_parameter_stays_an_int() -> None:
    # Given an int passed where the annotation says float (an int is a float to a checker)
    payload = encode_call("scale", (3,), {})
    # When it is decoded, Then the task gets the int it was given, as FastAPI would pass it
    (value,), _ = decode_call(scale, payload)
    assert type(value) is int and value == 3


def test_a_plain_payload_that_would_change_a_value_is_refused_with_its_place() -> None:
    # Given a Path inside dict[str, Any], encoded as plain JSON
    args = ({"root": Path("/srv")},)
    payload = encode_call("configure", args, {})
    # When exactness is checked, Then it is refused, naming where and both types
    with pytest.raises(ArgumentNotExact, match=r"config\['root'\] is a PosixPath .* a str"):
        check_round_trip(configure, "configure", args, {}, payload)


def test_prepare_stores_such_a_value_with_its_type(tmp_path: Path) -> None:
    # Given an Afterward, and the same call
    afterward = Afterward(url=f"sqlite:///{tmp_path / 'a.db'}")
    # When it is prepared, Then its payload carries the type and decodes to an equal value
    job = afterward.prepare(configure, ({"root": Path("/srv")},), {})
    assert json.loads(job.payload)["typed"] is True
    (config,), _ = decode_call(configure, job.payload)
    assert type(config["root"]) is type(Path("/srv")) and config == {"root": Path("/srv")}
    # And a plain call keeps the plain payload
    plain = afterward.prepare(write_notification, ("ada@example.com",), {})
    assert "typed" not in json.loads(plain.payload)


def test_task_ids_do_not_draw_from_the_applications_random(tmp_path: Path) -> None:
    # Given an app (or its tests) that seeded the global random
    import random

    afterward = Afterward(url=f"sqlite:///{tmp_path / 'a.db'}")
    random.seed(7)
    expected = [random.random() for _ in range(3)]
    random.seed(7)
    # When tasks are prepared between its draws
    drawn = []
    for _ in range(3):
        afterward.prepare(write_notification, ("ada@example.com",), {})
        drawn.append(random.random())
    # Then its sequence is the one it would have drawn without afterward
    assert drawn == expected
