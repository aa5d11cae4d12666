"""Secret parameters: found in a task's signature or options, hidden wherever arguments
are shown, and never shown because a payload could not be read."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest

from afterward.calls.redaction import (
    HIDDEN,
    REDACTED,
    Secret,
    arguments_to_show,
    redact_payload,
    secret_parameters,
)


def send(email: str, token: Annotated[str, Secret], retries: int = 3) -> None: ...


def kinds(
    a: Annotated[str, Secret],
    /,
    b: Annotated[str, Secret()],
    c: int,
    *rest: Annotated[str, Secret],
    d: Annotated[str | None, Secret] = None,
    e: int = 0,
    **more: Annotated[str, Secret],
) -> None: ...


def nested(key: list[Annotated[str, Secret]] | None, other: Annotated[int, "doc"]) -> None: ...


def unresolvable(a: Annotated[Missing, Secret], b: Missing) -> None: ...  # type: ignore[name-defined]  # noqa: F821


def plain(a: int, b: str, *args: Any, **kwargs: Any) -> None: ...


def listed(email: str, password: str, /, code: str, *, pin: str) -> None: ...


listed.__afterward_options__ = {"redact": ["password", "code", "pin", "extra_key"]}  # type: ignore[attr-defined]


class Mailer:
    def send(self, email: str, token: Annotated[str, Secret]) -> None: ...

    def __call__(self, token: Annotated[str, Secret]) -> None: ...


@pytest.mark.parametrize(
    ("func", "secret"),
    [
        (send, (1, "token")),
        (kinds, (0, 1, "b", "*", "d", "**")),
        (nested, (0, "key")),
        (unresolvable, (0, "a")),
        (plain, ()),
        (listed, (1, 2, "code", "pin", "extra_key")),
        (Mailer().send, (1, "token")),
        (Mailer.send, (2, "token")),
        (Mailer(), (0, "token")),
        (print, ()),
    ],
)
def test_secret_parameters_are_found_by_position_and_name(func: Any, secret: tuple[Any]) -> None:
    assert secret_parameters(func) == secret
    assert secret_parameters(func) == secret  # and again, from the cache


def test_secret_parameters_of_a_bound_method_do_not_depend_on_the_object() -> None:
    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def send(self, token: Annotated[str, Secret]) -> None: ...

    assert secret_parameters(Unhashable().send) == (0, "token")


def test_redact_payload_replaces_the_named_arguments() -> None:
    payload = json.dumps({"args": ["ann", "hunter2", 3], "kwargs": {"pin": "1234", "n": 1}})
    shown = json.loads(redact_payload(payload, (1, "token", "pin")))
    assert shown == {"args": ["ann", REDACTED, 3], "kwargs": {"pin": REDACTED, "n": 1}}
    # every positional (a secret *args) and every keyword argument (a secret **kwargs)
    shown = json.loads(redact_payload(payload, ("*", "**")))
    assert shown == {"args": [REDACTED] * 3, "kwargs": {"pin": REDACTED, "n": REDACTED}}
    # either key may be missing, typed values are replaced whole
    tagged = json.dumps({"args": [{"$afterward": "bytes", "value": "c2VjcmV0"}]})
    assert json.loads(redact_payload(tagged, (0,))) == {"args": [REDACTED]}


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        '{"args": ["hunter2"]',
        "[]",
        '"hunter2"',
        '{"args": "hunter2"}',
        '{"kwargs": ["hunter2"]}',
        '{"args": ["hunter2"], "other": 1}',
        "[" * 100_000,
    ],
)
def test_a_payload_that_cannot_be_read_is_hidden_whole(payload: str) -> None:
    assert redact_payload(payload, (0,)) == HIDDEN
    assert redact_payload(payload, ()) == payload


@pytest.mark.parametrize("redact", [[-1], [True], [1.0], [None], "token", {"a": 1}, 5])
def test_a_redact_option_that_cannot_be_read_hides_the_arguments(redact: Any) -> None:
    payload = json.dumps({"args": ["hunter2"], "kwargs": {"token": "s3cr3t"}})
    assert arguments_to_show(payload, {"redact": redact}) == HIDDEN


def test_arguments_to_show_reads_a_tasks_options() -> None:
    payload = json.dumps({"args": ["ann", "hunter2"], "kwargs": {}})
    assert "hunter2" not in arguments_to_show(payload, {"redact": [1]})
    assert arguments_to_show(payload, {"redact": []}) == payload
    assert arguments_to_show(payload, {"max_attempts": 3}) == payload
    assert arguments_to_show(payload, ["not", "a", "dict"]) == payload
    assert arguments_to_show(None, {"redact": [0]}) == HIDDEN
