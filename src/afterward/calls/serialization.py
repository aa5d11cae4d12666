"""Task arguments as JSON, never pickle.

`encode_call` turns ``(args, kwargs)`` into one JSON text; `decode_call` turns it back into
the types the function's annotations ask for (pydantic models, dataclasses, datetimes, UUIDs,
Decimals, Enums, bytes, sets, tuples…). Unannotated parameters get plain JSON values.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable
from functools import lru_cache
from pathlib import PurePath
from typing import Any, get_type_hints

import pydantic
import pydantic_core

from ..errors import ArgumentNotSerializable, PayloadTooLarge, TaskRefused
from .typed_json import from_typed, to_typed

__all__ = [
    "DEFAULT_MAX_PAYLOAD",
    "check_arguments",
    "decode_call",
    "decodes_unchanged",
    "encode_call",
    "encode_typed_call",
]

DEFAULT_MAX_PAYLOAD = 1024 * 1024
"""Bytes of encoded arguments one task may carry (1 MiB)."""

_BYTES_CONFIG = pydantic.ConfigDict(val_json_bytes="base64", ser_json_bytes="base64")
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
"""Made once: `json.dumps` with options builds an encoder on every call."""
_JSON_SCALARS: frozenset[type] = frozenset({str, int, float, bool, type(None)})
"""Types `json.dumps` writes as they are: no conversion needed."""


def encode_call(
    func_name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    max_bytes: int = DEFAULT_MAX_PAYLOAD,
) -> str:
    """Encode a call's arguments, or raise a `TaskRefused` error that says what to do."""
    try:
        body = {
            "args": [a if type(a) in _JSON_SCALARS else _to_json(a) for a in args],
            "kwargs": {
                k: v if type(v) in _JSON_SCALARS else _to_json(v) for k, v in kwargs.items()
            },
        }
        raw = _dump(body)
    except (pydantic_core.PydanticSerializationError, ValueError) as exc:
        raise _not_serializable(func_name, exc) from None
    return _within(raw, func_name, max_bytes)


def encode_typed_call(
    func_name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    max_bytes: int = DEFAULT_MAX_PAYLOAD,
) -> str:
    """Encode a call with every value's type written beside it (`typed_json`), for values
    the function's annotations cannot bring back as they were."""
    try:
        body = {
            "args": [to_typed(a) for a in args],
            "kwargs": {k: to_typed(v) for k, v in kwargs.items()},
            "typed": True,
        }
        raw = _dump(body)
    except ValueError as exc:  # UnsupportedValue, or a float JSON has no form for
        raise _not_serializable(func_name, exc) from None
    return _within(raw, func_name, max_bytes)


def _not_serializable(func_name: str, exc: Exception) -> ArgumentNotSerializable:
    return ArgumentNotSerializable(
        f"cannot store the arguments of {func_name}: {exc}. Pass JSON-friendly values "
        "(str, int, finite float, bool, None, lists, dicts, pydantic models, dataclasses, "
        "datetime, UUID, Decimal, Enum, Path, bytes, set, tuple), or an id the task can load. "
        "A pydantic model holding binary bytes needs "
        'model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64").'
    )


def _within(raw: bytes, func_name: str, max_bytes: int) -> str:
    if len(raw) > max_bytes:
        raise PayloadTooLarge(
            f"the arguments of {func_name} encode to {len(raw)} bytes, over the limit of "
            f"{max_bytes}: store the data elsewhere (a file, a table) and pass its key."
        )
    return raw.decode()


def _dump(body: dict[str, Any]) -> bytes:
    """`body` (JSON values only) as compact UTF-8 JSON.

    pydantic_core's writer takes a quarter of the time of the standard library's. It writes
    a non-finite float as ``NaN`` or ``Infinity``, which JSON has not: a text holding either
    word is written again by `json`, which refuses the float (`ValueError`) or, when the
    word was inside a string, writes the same value.
    """
    raw = pydantic_core.to_json(body)
    if b"NaN" in raw or b"Infinity" in raw:
        return _ENCODER.encode(body).encode()
    return raw


def _to_json(value: Any) -> Any:
    return pydantic_core.to_jsonable_python(value, bytes_mode="base64", fallback=_fallback)


def _fallback(value: Any) -> Any:
    """JSON for the types pydantic decodes but does not encode: pure paths, as text."""
    if isinstance(value, PurePath):
        return str(value)
    raise pydantic_core.PydanticSerializationError(
        f"Unable to serialize unknown type: {type(value)}"
    )


def check_arguments(
    func: Callable[..., Any], func_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """Refuse, inside the request, a call that could only ever fail in a worker.

    :raises TaskRefused: `func`'s signature does not accept these arguments.
    """
    try:
        fewest, most = _positional_counts(func)
        if not kwargs and fewest <= len(args) <= most:
            return  # what Signature.bind would accept, at a fraction of its cost
        signature = _call_spec(func)[0]
    except (TypeError, ValueError):  # no signature to check against (some builtins)
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TaskRefused(
            f"{func_name}{signature} cannot be called with these arguments ({exc}): "
            "pass what the function's parameters ask for"
        ) from None


def decode_call(func: Callable[..., Any], payload: str) -> tuple[list[Any], dict[str, Any]]:
    """Decode stored arguments for `func`, validated against its annotations.

    :raises ValueError: the payload is not what `encode_call` writes, or does not fit the
        function's signature.
    """
    body = json.loads(payload)
    if not isinstance(body, dict) or not isinstance(body.get("args"), list):
        raise ValueError("payload is not an object with an 'args' list")
    raw_args: list[Any] = body["args"]
    raw_kwargs = body.get("kwargs", {})
    if not isinstance(raw_kwargs, dict):
        raise ValueError("payload 'kwargs' is not an object")
    if body.get("typed") is True:  # the types are in the payload (`encode_typed_call`)
        args = [from_typed(a) for a in raw_args]
        kwargs = {k: from_typed(v) for k, v in raw_kwargs.items()}
        _check_typed(func, args, kwargs)
        return args, kwargs
    return _validated(func, raw_args, raw_kwargs)


def _check_typed(func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> None:
    """Refuse typed arguments their annotations do not accept as they are (strictly): a
    row says its payload is typed, and must not get past the function's annotations by
    saying so."""
    _each_annotated(func, args, kwargs, _Adapter.accept)


def _validated(
    func: Callable[..., Any], raw_args: list[Any], raw_kwargs: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Plain JSON arguments, each validated into its parameter's annotated type."""
    if not raw_kwargs:
        fewest, most = _positional_counts(func)
        if fewest <= len(raw_args) <= most < sys.maxsize:  # no *args: matched by position
            adapters = _call_spec(func)[1]
            names = _positional_names(func)
            return [
                value if (adapter := adapters.get(name)) is None else adapter.validate(value)
                for name, value in zip(names, raw_args, strict=False)
            ], {}
    bound = _each_annotated(func, raw_args, raw_kwargs, _Adapter.validate)
    return list(bound.args), dict(bound.kwargs)


def _each_annotated(
    func: Callable[..., Any],
    args: list[Any],
    kwargs: dict[str, Any],
    apply: Callable[[_Adapter, Any], Any],
) -> inspect.BoundArguments:
    """`args` and `kwargs` bound to `func`'s parameters, each value of an annotated one
    replaced by `apply(its adapter, value)` (or kept, where `apply` returns None)."""
    signature, adapters = _call_spec(func)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise ValueError(f"arguments do not fit {func.__qualname__}{signature}: {exc}") from None

    def one(adapter: _Adapter, value: Any) -> Any:
        applied = apply(adapter, value)
        return value if applied is None else applied

    for name, value in bound.arguments.items():
        adapter = adapters.get(name)
        if adapter is None:
            continue
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            bound.arguments[name] = tuple(one(adapter, v) for v in value)
        elif kind is inspect.Parameter.VAR_KEYWORD:
            bound.arguments[name] = {k: one(adapter, v) for k, v in value.items()}
        else:
            bound.arguments[name] = one(adapter, value)
    return bound


class _Adapter:
    """Validates one parameter's JSON value into its annotated type.

    Through JSON text, so that bytes come back from base64 and strict JSON rules apply.
    Types that refuse a config (dataclasses, TypedDicts) are validated inside a one-item
    list, which carries the base64 setting down to their fields; pydantic models keep
    their own config.
    """

    def __init__(self, tp: Any) -> None:
        self._wrapped = False
        self.exact = tp if tp in (str, int, float, bool) else None
        """A plain JSON type: a value the JSON decoder already made of it is kept as it is."""
        if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
            self._adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(tp)
            return
        try:
            self._adapter = pydantic.TypeAdapter(tp, config=_BYTES_CONFIG)
        except pydantic.PydanticUserError:
            self._adapter = pydantic.TypeAdapter(list[tp], config=_BYTES_CONFIG)
            self._wrapped = True

    def keeps(self, value: Any) -> bool:
        """Whether `validate` returns `value` itself: a JSON scalar of the annotated type,
        or an int for a float parameter (ints are floats in annotations, PEP 484)."""
        kind = type(value)
        return self.exact is not None and (
            kind is self.exact or (kind is int and self.exact is float)
        )

    def accept(self, value: Any) -> None:
        """Refuse (`pydantic.ValidationError`) a value that is not of the annotated type
        as it is, without converting it."""
        if not self.keeps(value):
            self._adapter.validate_python([value] if self._wrapped else value, strict=True)

    def validate(self, value: Any) -> Any:
        if self.keeps(value):
            return value
        if self._wrapped:
            return self._adapter.validate_json(json.dumps([value]))[0]
        return self._adapter.validate_json(json.dumps(value))


def decodes_unchanged(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> bool:
    """Whether `decode_call` is sure to give these arguments back as they are, without
    decoding them: every value is a JSON scalar (str, int, float, bool, None) that its
    parameter keeps (unannotated, or annotated with that very type)."""
    try:
        positional, named = _scalars_kept(func)
    except (TypeError, ValueError):
        return False
    if len(args) > len(positional):
        return False  # *args take part: left to decoding
    for kept, value in zip(positional, args, strict=False):
        if type(value) not in kept:
            return False
    # A name no parameter has goes to **kwargs: left to decoding, as is a value its
    # parameter would convert. (`all` is only asked when there are keywords: making its
    # generator costs more than the positional check.)
    return not kwargs or all(type(v) in named.get(k, _NONE_KEPT) for k, v in kwargs.items())


_NONE_KEPT: frozenset[type] = frozenset()


@lru_cache(maxsize=1024)
def _scalars_kept(
    func: Callable[..., Any],
) -> tuple[tuple[frozenset[type], ...], dict[str, frozenset[type]]]:
    """Per parameter of `func` (positional ones in order, and every named one), the JSON
    scalar types a value may have to come back unchanged without decoding."""
    signature, adapters = _call_spec(func)

    def kept(name: str) -> frozenset[type]:
        adapter = adapters.get(name)
        if adapter is None:
            return _JSON_SCALARS
        exact = adapter.exact
        if exact is None:
            return _NONE_KEPT
        return frozenset({int, float}) if exact is float else frozenset({exact})

    named = {
        name: kept(name)
        for name, p in signature.parameters.items()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    return tuple(named[name] for name in _positional_names(func)), named


@lru_cache(maxsize=1024)
def _call_spec(func: Callable[..., Any]) -> tuple[inspect.Signature, dict[str, _Adapter]]:
    """`func`'s signature and its parameters' adapters, worked out once per function."""
    return inspect.signature(func), _adapters(func)


@lru_cache(maxsize=1024)
def _positional_counts(func: Callable[..., Any]) -> tuple[int, int]:
    """The fewest and most positional arguments `func` takes when given no keywords;
    (1, 0), which no call fits, when it has a keyword-only parameter without a default."""
    params = _call_spec(func)[0].parameters.values()
    if any(p.kind is p.KEYWORD_ONLY and p.default is p.empty for p in params):
        return 1, 0
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    fewest = sum(1 for p in positional if p.default is p.empty)
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return fewest, sys.maxsize
    return fewest, len(positional)


@lru_cache(maxsize=1024)
def _positional_names(func: Callable[..., Any]) -> tuple[str, ...]:
    """The names of `func`'s parameters that take positional arguments, in order."""
    params = _call_spec(func)[0].parameters.values()
    return tuple(p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _adapters(func: Callable[..., Any]) -> dict[str, _Adapter]:
    try:
        hints = get_type_hints(func, include_extras=True)
    except Exception:  # unresolvable forward references: fall back to plain JSON values
        return {}
    hints.pop("return", None)
    adapters = {}
    for name, tp in hints.items():
        try:
            adapters[name] = _Adapter(tp)
        except pydantic.PydanticUserError:  # a type pydantic cannot validate: plain JSON
            continue
    return adapters
