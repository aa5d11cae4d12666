"""Typed JSON: values whose type plain JSON loses come back exactly, and a stored tag can
only rebuild a model, a dataclass or an enum of an imported module, without running it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import ipaddress
import json
import sys
import uuid
from pathlib import Path, PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
import pytest

from afterward.calls.roundtrip import difference
from afterward.calls.typed_json import TAG, UnsupportedValue, find_class, from_typed, to_typed


class Colour(enum.Enum):
    RED = "red"


class Base(pydantic.BaseModel):
    kind: str


class Child(Base):
    extra: int

    @pydantic.field_validator("extra")
    @classmethod
    def refuse(cls, value: int) -> int:  # would refuse a rebuild that ran validators
        if value < 0:
            raise ValueError("negative")
        return value


@dataclasses.dataclass(frozen=True)
class Frozen:
    x: int
    tags: tuple[str, ...]

    def __post_init__(self) -> None:
        CALLS.append("post_init")


CALLS: list[str] = []

VALUES: list[Any] = [
    {"root": Path("/srv"), "pure": PurePosixPath("a/b"), "n": 3},
    (1, "a", (2.5, None)),
    {1, 2, 3},
    frozenset({"a"}),
    {1: "int key", (1, 2): "tuple key"},
    {TAG: "looks like a tag", "v": 1},
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    decimal.Decimal("1.10"),
    dt.date(2026, 12, 6),
    dt.datetime(2026, 12, 6, 1, 2, 3, 4),
    dt.datetime(2026, 12, 6, 1, 2, 3, tzinfo=dt.UTC),
    dt.datetime(2026, 7, 1, 12, tzinfo=ZoneInfo("Europe/Paris")),
    dt.time(1, 2, 3),
    dt.timedelta(days=-1, seconds=5, microseconds=7),
    b"\x00\xff",
    ipaddress.IPv4Address("10.0.0.1"),
    ipaddress.IPv6Network("2001:db8::/32"),
    Colour.RED,
    Child(kind="k", extra=1),
    Frozen(1, ("a",)),
    [Child(kind="k", extra=2), {"nested": {Colour.RED}}],
]


@pytest.mark.parametrize("value", VALUES, ids=[type(v).__name__ for v in VALUES])
def test_values_come_back_equal_and_of_the_same_types(value: Any) -> None:
    # Given a value whose type plain JSON loses
    # When it is written as typed JSON text and read back
    back = from_typed(json.loads(json.dumps(to_typed(value))))
    # Then it is equal and of the same type at every level
    assert difference(value, back, "value") is None


def test_a_zoneinfo_time_zone_is_kept_not_turned_into_an_offset() -> None:
    value = dt.datetime(2026, 1, 1, tzinfo=ZoneInfo("Europe/Paris"))
    back = from_typed(json.loads(json.dumps(to_typed(value))))
    assert back.tzinfo is ZoneInfo("Europe/Paris")
    assert difference(value, back.replace(tzinfo=dt.UTC), "t") is not None


def test_rebuilding_runs_no_code_of_the_class() -> None:
    # Given a frozen dataclass whose __post_init__ records a call, and stored model fields
    # that its validator would refuse
    CALLS.clear()
    stored = to_typed(Frozen(1, ("a",)))
    CALLS.clear()
    model = to_typed(Child(kind="k", extra=1))
    model["v"]["extra"] = -5
    # When they are rebuilt
    frozen = from_typed(stored)
    child = from_typed(model)
    # Then no __init__, __post_init__ or validator ran
    assert CALLS == []
    assert type(child) is Child and child.extra == -5
    assert frozen == Frozen(1, ("a",))


@pytest.mark.parametrize(
    "tagged",
    [
        {TAG: "model", "c": "os:PathLike", "v": {}, "set": []},
        {TAG: "dataclass", "c": f"{__name__}:Base", "v": {}},
        {TAG: "enum", "c": f"{__name__}:Frozen", "v": 1},
        {TAG: "model", "c": f"{__name__}:pydantic.BaseModel", "v": {}, "set": []},
        {TAG: "model", "c": f"{__name__}:Child.__base__", "v": {}, "set": []},
        {TAG: "model", "c": "no_such_module_here:Thing", "v": {}, "set": []},
        {TAG: "pickle", "v": "gASV"},
    ],
)
def test_a_hostile_tag_is_refused(tagged: dict[str, Any]) -> None:
    # Given a stored tag naming a class that is not a model, dataclass or enum of an
    # imported module, or an unknown kind
    # When it is read, Then it is refused and nothing is imported
    with pytest.raises(ValueError):
        from_typed(tagged)
    assert "no_such_module_here" not in sys.modules


def test_find_class_never_walks_into_another_module() -> None:
    assert find_class(f"{__name__}:pydantic") is None
    assert find_class(f"{__name__}:Child") is Child


def test_values_with_no_form_are_refused() -> None:
    # Given an object with no form, and a dataclass no module holds by name
    @dataclasses.dataclass
    class Inner:
        x: int

    # When they are written, Then they are refused, the second saying what to do
    with pytest.raises(UnsupportedValue):
        to_typed(object())
    with pytest.raises(UnsupportedValue, match="module level"):
        to_typed(Inner(1))
