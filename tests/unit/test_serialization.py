"""Task arguments as JSON: encode_call / decode_call round trips, refusals and bad payloads."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import inspect
import json
import socket
import uuid
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from afterward.calls.serialization import (
    DEFAULT_MAX_PAYLOAD,
    check_arguments,
    decode_call,
    encode_call,
)
from afterward.errors import ArgumentNotSerializable, PayloadTooLarge, TaskRefused


class User(pydantic.BaseModel):
    id: int
    name: str


@dataclasses.dataclass
class Point:
    x: int
    y: float


@dataclasses.dataclass
class Blob:
    name: str
    data: bytes


class Attachment(pydantic.BaseModel):
    data: bytes


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


def round_trip(func: Any, *args: Any, **kwargs: Any) -> tuple[list[Any], dict[str, Any]]:
    payload = encode_call(func.__name__, args, kwargs)
    json.loads(payload)  # always a valid JSON text
    return decode_call(func, payload)


def takes_user(u: User) -> None: ...
def takes_point(p: Point) -> None: ...
def takes_blob(b: Blob) -> None: ...
def takes_attachment(a: Attachment) -> None: ...
def takes_datetime(when: dt.datetime) -> None: ...
def takes_date(day: dt.date) -> None: ...
def takes_time(at: dt.time) -> None: ...
def takes_uuid(key: uuid.UUID) -> None: ...
def takes_decimal(amount: Decimal) -> None: ...
def takes_colour(c: Colour) -> None: ...
def takes_bytes(data: bytes) -> None: ...
def takes_set(ids: set[int]) -> None: ...
def takes_tuple(pair: tuple[int, str]) -> None: ...
def takes_users(users: list[User]) -> None: ...
def takes_optional(n: int | None = None) -> None: ...
def takes_anything(raw, count: int) -> None: ...  # type: ignore[no-untyped-def]
def takes_star(*amounts: Decimal, **when: dt.datetime) -> None: ...
def takes_keywords(a: int, *, b: uuid.UUID, c: str = "x") -> None: ...


TZ = dt.timezone(dt.timedelta(hours=5, minutes=30))
KEY = uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.mark.parametrize(
    ("func", "value"),
    [
        (takes_user, User(id=1, name="Ada")),
        (takes_point, Point(x=1, y=2.5)),
        (takes_datetime, dt.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=TZ)),
        (takes_date, dt.date(2024, 2, 29)),
        (takes_time, dt.time(7, 8, 9, 10)),
        (takes_uuid, KEY),
        (takes_decimal, Decimal("0.1000000000000000000000001")),
        (takes_colour, Colour.BLUE),
        (takes_bytes, b"hello"),
        (takes_bytes, b"\xff\x00\xfe\x80"),
        (takes_bytes, b""),
        (takes_set, {3, 1, 2}),
        (takes_tuple, (7, "seven")),
        (takes_users, [User(id=1, name="a"), User(id=2, name="b")]),
        (takes_optional, None),
        (takes_optional, 5),
    ],
    ids=lambda v: type(v).__name__ if not callable(v) else v.__name__,
)
def test_positional_argument_round_trips(func: Any, value: Any) -> None:
    # Given a value of the type the function's parameter is annotated with
    # When it is encoded and decoded for that function
    args, kwargs = round_trip(func, value)
    # Then the same value, of the same type, comes back
    assert args == [value]
    assert type(args[0]) is type(value)
    assert kwargs == {}


def test_datetime_keeps_its_timezone() -> None:
    # Given an aware datetime in UTC+05:30
    when = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=TZ)
    # When it round trips
    (back,), _ = round_trip(takes_datetime, when)
    # Then it is equal, and its offset is still +05:30
    assert back == when
    assert back.utcoffset() == dt.timedelta(hours=5, minutes=30)


def test_decimal_is_exact() -> None:
    # Given a Decimal that a float cannot hold, with trailing zeros
    amount = Decimal("12345678901234567890.1200")
    # When it round trips
    (back,), _ = round_trip(takes_decimal, amount)
    # Then every digit is kept
    assert str(back) == "12345678901234567890.1200"


def test_dataclass_with_non_utf8_bytes_round_trips() -> None:
    # Given a dataclass holding binary data
    blob = Blob(name="png", data=b"\x89PNG\xff\x00")
    # When it round trips
    (back,), _ = round_trip(takes_blob, blob)
    # Then the bytes are the same bytes
    assert back == blob


def test_model_with_non_utf8_bytes_round_trips_or_is_refused() -> None:
    # Given a pydantic model holding binary data
    value = Attachment(data=b"\xff\x00")
    # When it is encoded
    # Then it is either refused as a TaskRefused (never another error) or round trips
    try:
        payload = encode_call("takes_attachment", (value,), {})
    except TaskRefused:
        return
    assert decode_call(takes_attachment, payload) == ([value], {})


def test_keywords_and_keyword_only_parameters() -> None:
    # Given a call with a positional and keyword-only arguments
    # When it round trips
    args, kwargs = round_trip(takes_keywords, 3, b=KEY, c="y")
    # Then each argument is converted to its annotation and stays where it was passed
    assert args == [3]
    assert kwargs == {"b": KEY, "c": "y"}
    assert isinstance(kwargs["b"], uuid.UUID)


def test_star_args_and_star_kwargs_are_converted_per_item() -> None:
    # Given *args annotated Decimal and **kwargs annotated datetime
    when = dt.datetime(2030, 5, 6, tzinfo=dt.UTC)
    # When a call with several of each round trips
    args, kwargs = round_trip(takes_star, Decimal("1.10"), Decimal("2"), start=when, end=when)
    # Then each item has its annotated type
    assert args == [Decimal("1.10"), Decimal("2")]
    assert all(isinstance(a, Decimal) for a in args)
    assert kwargs == {"start": when, "end": when}
    assert all(isinstance(v, dt.datetime) for v in kwargs.values())


def test_unannotated_parameter_receives_plain_json() -> None:
    # Given a parameter without annotation, passed a UUID and a tuple
    # When they round trip
    args, _ = round_trip(takes_anything, {"k": KEY, "t": (1, 2)}, "7")
    # Then it gets the JSON form (str, list), and the annotated one is still converted
    assert args == [{"k": str(KEY), "t": [1, 2]}, 7]


class FakeConnection:
    """Something like a socket or a DB session: not data."""


@pytest.mark.parametrize("value", [object(), FakeConnection(), {"nested": [object()]}])
def test_unserializable_argument_is_refused_with_advice(value: Any) -> None:
    # Given an argument that has no JSON form
    # When it is encoded
    with pytest.raises(ArgumentNotSerializable) as info:
        encode_call("app:notify", (1, value), {})
    # Then the error names the function and says what to pass instead
    message = str(info.value)
    assert "app:notify" in message
    assert "Pass JSON-friendly values" in message
    assert "an id the task can load" in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((float("nan"),), {}),
        ((), {"ratio": float("inf")}),
        (([1.0, [2.0, -float("inf")]],), {}),
        (({"scores": {"a": float("nan")}},), {}),
        ((Point(x=1, y=float("inf")),), {}),
    ],
)
def test_a_non_finite_float_is_refused_at_any_depth(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    # Given a NaN or an infinity, at the top or nested in lists, dicts or a dataclass
    # When the call is encoded
    # Then it is refused: JSON has no such number, and a worker could not decode it
    with pytest.raises(ArgumentNotSerializable):
        encode_call("app:f", args, kwargs)


@pytest.mark.parametrize(
    "value",
    [
        "NaN",
        "-Infinity and NaN",
        {"NaN": "Infinity"},
        ["é€\u2028", "tab\t", 'quote"'],
        2**70,
        {1: "int key"},
        [1e16, 5e-324, -0.0, 0.1],
    ],
)
def test_json_values_encode_as_the_standard_library_reads_them(value: Any) -> None:
    # Given arguments that are JSON values, some holding the words NaN and Infinity
    # When they are encoded
    payload = encode_call("app:f", (value,), {"k": value})
    # Then the text reads back as what the standard library would have written
    expected = json.dumps({"args": [value], "kwargs": {"k": value}}, ensure_ascii=False)
    assert json.loads(payload) == json.loads(expected)
    assert round_trip(takes_anything, value, 1)[0][0] == json.loads(json.dumps(value))


def test_a_lone_surrogate_is_refused() -> None:
    # Given text that has no UTF-8 form (half of a surrogate pair)
    # When it is encoded
    # Then it is refused inside the request, not when a store writes it
    with pytest.raises(ArgumentNotSerializable):
        encode_call("app:f", ("\ud800",), {})


def test_a_real_socket_is_refused() -> None:
    # Given an open socket passed as a keyword argument
    # When it is encoded
    # Then it is refused
    with socket.socket() as sock, pytest.raises(ArgumentNotSerializable, match="socket"):
        encode_call("app:send", (), {"conn": sock})


def test_payload_over_the_limit_is_refused_with_size_and_limit() -> None:
    # Given a 1000-character argument and a 500-byte limit
    # When it is encoded
    with pytest.raises(PayloadTooLarge) as info:
        encode_call("app:big", ("x" * 1000,), {}, max_bytes=500)
    # Then the error gives the encoded size and the limit
    expected = len(json.dumps({"args": ["x" * 1000], "kwargs": {}}, separators=(",", ":")))
    assert f"{expected} bytes" in str(info.value)
    assert "limit of 500" in str(info.value)


def test_size_is_counted_in_utf8_bytes() -> None:
    # Given text of 100 characters that is 300 bytes in UTF-8
    text = "€" * 100
    # When it is encoded under a 200-byte limit
    # Then it is refused, though it is under 200 characters
    with pytest.raises(PayloadTooLarge):
        encode_call("app:f", (text,), {}, max_bytes=200)
    assert len(encode_call("app:f", (text,), {})) < 200


def test_payload_at_the_limit_is_accepted() -> None:
    # Given a payload exactly as large as the limit
    payload = encode_call("app:f", ("abc",), {})
    size = len(payload.encode())
    # When it is encoded with that limit
    # Then it is accepted
    assert encode_call("app:f", ("abc",), {}, max_bytes=size) == payload
    assert DEFAULT_MAX_PAYLOAD == 1024 * 1024


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        "[1, 2]",
        '{"kwargs": {}}',
        '{"args": {"a": 1}}',
        '{"args": [], "kwargs": []}',
        '{"args": [1, 2, 3], "kwargs": {}}',
        '{"args": [], "kwargs": {"nope": 1}}',
        '{"args": ["not a uuid"], "kwargs": {}}',
    ],
)
def test_bad_payload_raises_value_error(payload: str) -> None:
    # Given a payload that is not what encode_call writes, or does not fit the function
    # When it is decoded for a one-parameter function
    # Then ValueError is raised
    with pytest.raises(ValueError):
        decode_call(takes_uuid, payload)


def _plain(a: Any, b: Any) -> None:
    pass


def _defaults(a: Any, b: Any = 1, /, c: Any = 2) -> None:
    pass


def _star(a: Any, *rest: Any) -> None:
    pass


def _keyword_only(a: Any, *, b: Any) -> None:
    pass


def _keyword_default(a: Any, *, b: Any = 1) -> None:
    pass


def _binds(func: Any, args: Any) -> bool:
    """Whether Python accepts `func(*args)`."""
    try:
        inspect.signature(func).bind(*args)
    except TypeError:
        return False
    return True


@pytest.mark.parametrize("func", [_plain, _defaults, _star, _keyword_only, _keyword_default])
@pytest.mark.parametrize("count", range(5))
def test_checking_positional_calls_agrees_with_signature_bind(func: Any, count: int) -> None:
    # Given a call with `count` positional arguments and no keywords
    args = tuple(range(count))
    fits = _binds(func, args)
    # Then check_arguments accepts it exactly when Python would
    if fits:
        check_arguments(func, "f", args, {})
    else:
        with pytest.raises(TaskRefused):
            check_arguments(func, "f", args, {})


@pytest.mark.parametrize("func", [_plain, _defaults, _star, _keyword_only, _keyword_default])
@pytest.mark.parametrize("count", range(5))
def test_decoding_positional_calls_agrees_with_signature_bind(func: Any, count: int) -> None:
    # Given a stored call with `count` positional arguments and no keywords
    args = list(range(count))
    payload = json.dumps({"args": args, "kwargs": {}})
    fits = _binds(func, args)
    # Then decoding it gives the arguments back exactly when Python would accept them
    if fits:
        assert decode_call(func, payload) == (args, {})
    else:
        with pytest.raises(ValueError, match="arguments do not fit"):
            decode_call(func, payload)


def _purge(user_id: int, note: str = "") -> None: ...


def test_a_row_saying_typed_still_meets_the_annotations() -> None:
    # Given rows that claim their payload is typed, with values the annotations refuse
    rows = [
        '{"args": ["1 OR 1=1"], "typed": true}',
        json.dumps({"args": [{"$afterward": "uuid", "v": str(uuid.uuid4())}], "typed": True}),
        '{"args": [1], "kwargs": {"note": {"$afterward": "bytes", "v": "aGk="}}, "typed": true}',
    ]
    # Then each is refused as a value of the wrong type, as a plain payload would be
    for row in rows:
        with pytest.raises(ValueError):
            decode_call(_purge, row)
    # And a typed value of the annotated type is accepted as it is
    assert decode_call(_purge, '{"args": [7], "typed": true}') == ([7], {})
