"""JSON that keeps the types plain JSON loses, for calls annotations cannot restore.

Plain arguments come back as their parameters' annotations ask (`serialization`). Where
no annotation says the type (an unannotated parameter, `Any`, ``dict[str, Any]``) or it
names a base class of the value (a pydantic field typed ``SerializeAsAny[Base]``), a value
is written as ``{"$afterward": kind, ...}``: a tagged object naming its kind, and for
models, dataclasses and enums its class as ``module:Qualname``.

Decoding never runs code of the named class: a model is rebuilt with `model_construct`
(no validators), a dataclass by setting its fields on a bare instance (no ``__init__``),
an enum by value. A class is only looked up in modules already imported, and only a
pydantic model, a dataclass or an enum is accepted.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import ipaddress
import pathlib
import sys
import uuid
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pydantic

__all__ = ["TAG", "UnsupportedValue", "from_typed", "to_typed"]

TAG = "$afterward"
"""The key that marks a tagged object."""


class UnsupportedValue(ValueError):
    """A value this encoding has no form for."""


_SCALARS = (str, int, float, bool, type(None))
_BY_TEXT: dict[str, Callable[[str], Any]] = {
    "uuid": uuid.UUID,
    "decimal": decimal.Decimal,
    "date": dt.date.fromisoformat,
    "IPv4Address": ipaddress.IPv4Address,
    "IPv6Address": ipaddress.IPv6Address,
    "IPv4Network": ipaddress.IPv4Network,
    "IPv6Network": ipaddress.IPv6Network,
    "IPv4Interface": ipaddress.IPv4Interface,
    "IPv6Interface": ipaddress.IPv6Interface,
    **{
        cls.__name__: cls
        for cls in (
            pathlib.PurePath,
            pathlib.PurePosixPath,
            pathlib.PureWindowsPath,
            pathlib.Path,
            pathlib.PosixPath,
            pathlib.WindowsPath,
        )
    },
}
"""Kinds written as their text, and how to read them back."""
_TEXT_KINDS: dict[Any, str] = {
    **{cls: name for name, cls in _BY_TEXT.items() if isinstance(cls, type)},
    dt.date: "date",
}


def to_typed(value: Any) -> Any:
    """`value` as JSON values, tagged where plain JSON would lose its type.

    :raises UnsupportedValue: a value (at any depth) with no form here.
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is list:
        return [to_typed(v) for v in value]
    if kind is dict and all(type(k) is str and k != TAG for k in value):
        return {k: to_typed(v) for k, v in value.items()}
    text_kind = _TEXT_KINDS.get(kind)
    if text_kind is not None:
        return {TAG: text_kind, "v": value.isoformat() if kind is dt.date else str(value)}
    encode = _ENCODERS.get(kind)
    if encode is not None:
        return {TAG: encode[0], "v": encode[1](value)}
    return _to_typed_class(value)


def _to_typed_class(value: Any) -> Any:
    cls = type(value)
    if isinstance(value, enum.Enum):
        return {TAG: "enum", "c": _class_name(cls), "v": to_typed(value.value)}
    if isinstance(value, pydantic.BaseModel):
        fields = {**value.__dict__, **(value.__pydantic_extra__ or {})}
        return {
            TAG: "model",
            "c": _class_name(cls),
            "v": to_typed(fields),
            "set": sorted(value.model_fields_set),
        }
    if dataclasses.is_dataclass(value):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {TAG: "dataclass", "c": _class_name(cls), "v": to_typed(fields)}
    raise UnsupportedValue(f"no JSON form for a {cls.__qualname__}")


def _class_name(cls: type) -> str:
    name = f"{cls.__module__}:{cls.__qualname__}"
    if find_class(name) is not cls:
        raise UnsupportedValue(
            f"{cls.__qualname__} cannot be found again by name (define it at module level)"
        )
    return name


def _aware(value: dt.datetime | dt.time) -> dict[str, Any]:
    zone = value.tzinfo
    return {"iso": value.isoformat(), "zone": zone.key if isinstance(zone, ZoneInfo) else None}


def _from_aware(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    def read(v: Any) -> Any:
        value = parse(v["iso"])
        return value.replace(tzinfo=ZoneInfo(v["zone"])) if v["zone"] else value

    return read


_ENCODERS: dict[type, tuple[str, Callable[[Any], Any]]] = {
    tuple: ("tuple", lambda v: [to_typed(x) for x in v]),
    set: ("set", lambda v: [to_typed(x) for x in v]),
    frozenset: ("frozenset", lambda v: [to_typed(x) for x in v]),
    dict: ("dict", lambda v: [[to_typed(k), to_typed(x)] for k, x in v.items()]),
    bytes: ("bytes", lambda v: base64.b64encode(v).decode()),
    dt.datetime: ("datetime", _aware),
    dt.time: ("time", _aware),
    dt.timedelta: ("timedelta", lambda v: [v.days, v.seconds, v.microseconds]),
}
_DECODERS: dict[str, Callable[[Any], Any]] = {
    "tuple": lambda v: tuple(from_typed(x) for x in v),
    "set": lambda v: {from_typed(x) for x in v},
    "frozenset": lambda v: frozenset(from_typed(x) for x in v),
    "dict": lambda v: {from_typed(k): from_typed(x) for k, x in v},
    "bytes": base64.b64decode,
    "datetime": _from_aware(dt.datetime.fromisoformat),
    "time": _from_aware(dt.time.fromisoformat),
    "timedelta": lambda v: dt.timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
}


def from_typed(value: Any) -> Any:
    """Rebuild what `to_typed` wrote.

    :raises ValueError: a tag, class or value that `to_typed` cannot have written.
    """
    if isinstance(value, list):
        return [from_typed(v) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get(TAG)
    if kind is None:
        return {k: from_typed(v) for k, v in value.items()}
    if kind in _BY_TEXT:
        return _BY_TEXT[kind](value["v"])
    if kind in _DECODERS:
        return _DECODERS[kind](value["v"])
    if kind in ("enum", "model", "dataclass"):
        return _from_typed_class(kind, value)
    raise ValueError(f"unknown tagged kind {kind!r}")


def _from_typed_class(kind: str, value: dict[str, Any]) -> Any:
    cls = find_class(value["c"])
    fields = from_typed(value["v"])
    if kind == "enum" and cls is not None and issubclass(cls, enum.Enum):
        for member in cls:  # by value, without the class's own `_missing_` hook
            if member.value == fields and type(member.value) is type(fields):
                return member
        raise ValueError(f"the stored value is not a member of {value['c']!r}")
    if kind == "model" and cls is not None and issubclass(cls, pydantic.BaseModel):
        return cls.model_construct(_fields_set=set(value["set"]), **fields)
    if kind == "dataclass" and cls is not None and dataclasses.is_dataclass(cls):
        made = object.__new__(cls)
        for name, field_value in fields.items():
            object.__setattr__(made, name, field_value)
        return made
    raise ValueError(f"{value['c']!r} is not a {kind} class of an imported module")


def find_class(name: str) -> type | None:
    """The class stored as ``module:Qualname``, from an already-imported module, or None.
    Never imports; never walks into another module or through a dunder."""
    module_name, _, path = name.partition(":")
    found: Any = sys.modules.get(module_name)
    for step in path.split("."):
        if found is None or not step.isidentifier() or step.startswith("__"):
            return None
        found = vars(found).get(step)
        if not isinstance(found, type):
            return None
    return found  # type: ignore[no-any-return]
