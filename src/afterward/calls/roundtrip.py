"""Exactness: a call is stored only if decoding gives back equal values of the same types.

`check_round_trip` decodes a call's payload as a worker will and compares it with what
`add_task` was given, at every nesting level. A value JSON cannot carry exactly for that
parameter (a `Path` inside a ``dict[str, Any]``, a `UUID` for an unannotated parameter,
an int for a `str` parameter) is refused with the place and the two types, instead of
reaching the task changed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
from collections.abc import Callable
from typing import Any

import pydantic

from ..errors import ArgumentNotExact
from .serialization import decode_call

__all__ = ["check_round_trip", "difference"]


def check_round_trip(
    func: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any], payload: str
) -> None:
    """Refuse a call whose stored arguments would not decode to equal values of the same
    types. (Callers ask `decodes_unchanged` first: most calls need no decoding.)

    :raises ArgumentNotExact: naming the argument, where inside it, and the two types.
    """
    try:
        back_args, back_kwargs = decode_call(func, payload)
        signature = inspect.signature(func)
        given = signature.bind(*args, **kwargs).arguments
        back = signature.bind(*back_args, **back_kwargs).arguments
    except (TypeError, ValueError) as exc:
        raise ArgumentNotExact(
            f"the arguments of {name} would not decode as the function's annotations ask "
            f"({_first_line(exc)}): pass values of the annotated types"
        ) from None
    for param, value in given.items():
        where = difference(value, back.get(param), param)
        if where is not None:
            raise ArgumentNotExact(
                f"{name}: {where}, so the task would receive a different value than was "
                "passed. Annotate the parameter with the value's type (pydantic models, "
                "dataclasses, datetime, UUID, Decimal, Enum, Path, bytes, set and tuple "
                "come back as annotated), or pass a value JSON keeps as it is."
            )


def difference(given: Any, back: Any, path: str) -> str | None:
    """Where `back` differs from `given` in type or value, said for a person
    (``"config['root'] is a PosixPath and would come back as a str"``), or None. Values
    themselves are never quoted: they may be secrets, and the reason is logged and stored."""
    if type(given) is not type(back):
        return f"{path} is a {type(given).__name__} and would come back as a {type(back).__name__}"
    if isinstance(given, list | tuple | dict | pydantic.BaseModel) or (
        dataclasses.is_dataclass(given)
    ):
        return _inner_difference(given, back, path)
    if isinstance(given, dt.datetime | dt.time) and type(given.tzinfo) is not type(back.tzinfo):
        zone, zone_back = type(given.tzinfo).__name__, type(back.tzinfo).__name__
        return f"{path} has a {zone} time zone and would come back with a {zone_back}"
    if isinstance(given, set | frozenset):
        if {(type(v), v) for v in given} != {(type(v), v) for v in back}:
            return f"{path} would come back with other items"
        return None
    return None if given == back else f"{path} would come back as a different value"


def _inner_difference(given: Any, back: Any, path: str) -> str | None:
    """`difference` for a container of the same type on both sides: item by item."""
    if isinstance(given, list | tuple):
        if len(given) != len(back):
            return f"{path} would come back with {len(back)} items instead of {len(given)}"
        pairs = enumerate(zip(given, back, strict=True))
        return _first(difference(g, b, f"{path}[{i}]") for i, (g, b) in pairs)
    if isinstance(given, dict):
        if list(given) != list(back):
            return f"the keys of {path} would come back different (JSON keys are strings)"
        return _first(difference(v, back[k], f"{path}[{k!r}]") for k, v in given.items())
    if isinstance(given, pydantic.BaseModel):
        fields = {**given.__dict__, **(given.__pydantic_extra__ or {})}
        fields_back = {**back.__dict__, **(back.__pydantic_extra__ or {})}
        return difference(fields, fields_back, path)
    names = [f.name for f in dataclasses.fields(given)]
    return _first(difference(getattr(given, n), getattr(back, n), f"{path}.{n}") for n in names)


def _first(found: Any) -> str | None:
    return next((d for d in found if d is not None), None)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
