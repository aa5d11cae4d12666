"""Arguments marked secret, and a task's arguments as they may be shown.

A task's arguments are stored as they are (a worker needs them); what is marked secret
is hidden wherever afterward *shows* them (``afterward show``, logs, any later API). Mark
a parameter secret in the task's signature::

    from typing import Annotated
    from afterward import Secret

    def send_reset_mail(email: str, token: Annotated[str, Secret]) -> None: ...

or name it in the task's options, for a function whose annotations you do not own::

    @task(redact=["token"])
    def send_reset_mail(email: str, token: str) -> None: ...

`secret_parameters` reads both, once per function. What a task stores in its options
under ``"redact"`` is that answer: positions in the payload's ``args`` (ints) and keys of
its ``kwargs`` (strs), plus ``"*"`` for every positional argument (a secret ``*args``)
and ``"**"`` for every keyword argument (a secret ``**kwargs``). `redact_payload` applies
it to the stored payload, and hides the whole payload when it cannot be read: a secret
is never shown because a row was malformed.

Secrets can still reach the store's other columns through the task itself: an exception
message that quotes an argument is stored as the task's error as it is.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, TypeGuard, get_args, get_origin, get_type_hints

__all__ = [
    "HIDDEN",
    "REDACTED",
    "Secret",
    "arguments_to_show",
    "redact_payload",
    "secret_parameters",
]

REDACTED = "[redacted]"
"""What a secret argument is shown as."""
HIDDEN = "<arguments hidden: not readable>"
"""What a payload is shown as when some of it is secret but it cannot be read."""
ALL_POSITIONAL = "*"
"""In a redact list: every positional argument (a secret ``*args``)."""
ALL_KEYWORD = "**"
"""In a redact list: every keyword argument (a secret ``**kwargs``)."""

_REDACT_OPTION = "redact"
_OPTIONS_ATTRIBUTE = "__afterward_options__"
_SECRET_WORD = re.compile(r"\bSecret\b")
_KEEP = 4096
"""Functions whose answer is kept (the dictionaries are emptied past that)."""
_KNOWN: dict[Any, tuple[int | str, ...]] = {}
_KNOWN_BOUND: dict[Any, tuple[int | str, ...]] = {}
"""Bound methods, by their function: ``obj.method`` is a new object at every access."""


class Secret:
    """Marks a task parameter secret: ``token: Annotated[str, Secret]``.

    Its value is stored (the task needs it) but shown as ``[redacted]`` by
    ``afterward show`` and anywhere afterward displays a task's arguments. The class
    itself is the marker; an instance, ``Annotated[str, Secret()]``, works too.
    """

    def __repr__(self) -> str:
        return "Secret"


def secret_parameters(func: Callable[..., Any]) -> tuple[int | str, ...]:
    """Where `func`'s secret arguments sit in a call: for each parameter annotated
    ``Annotated[..., Secret]`` or named in ``@task(redact=[...])``, its position and its
    name (only the position for a positional-only parameter, only the name for a
    keyword-only one; `ALL_POSITIONAL` / `ALL_KEYWORD` for ``*args`` / ``**kwargs``).

    Never raises: a callable whose signature or annotations cannot be read gives what
    could be read (a string annotation that cannot be resolved counts as secret if it
    names ``Secret``). Computed once per function (a dictionary look-up after that).
    """
    try:
        answer = _KNOWN.get(func)
    except TypeError:  # an unhashable callable object
        answer = None
    return _remember(func) if answer is None else answer


def redact_payload(payload: str, redact: Sequence[int | str]) -> str:
    """`payload` (``{"args": [...], "kwargs": {...}}``) with the arguments `redact` names
    replaced by `REDACTED`.

    With nothing to redact the payload is returned as it is; with something to redact
    and a payload (or a redact list) that cannot be read, `HIDDEN`.
    """
    if not redact:
        return payload
    if not all(_is_item(r) for r in redact):
        return HIDDEN
    positions = {r for r in redact if type(r) is int}
    names = {r for r in redact if type(r) is str}
    try:
        body = json.loads(payload)
    except (ValueError, TypeError, RecursionError):
        return HIDDEN
    if not isinstance(body, dict) or not set(body) <= {"args", "kwargs"}:
        return HIDDEN
    args, kwargs = body.get("args", []), body.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        return HIDDEN
    every_arg, every_kwarg = ALL_POSITIONAL in names, ALL_KEYWORD in names
    out: dict[str, Any] = {}
    if "args" in body:
        out["args"] = [REDACTED if every_arg or i in positions else a for i, a in enumerate(args)]
    if "kwargs" in body:
        out["kwargs"] = {k: REDACTED if every_kwarg or k in names else v for k, v in kwargs.items()}
    return json.dumps(out, ensure_ascii=False)


def arguments_to_show(payload: object, options: object) -> str:
    """A stored task's arguments as they may be shown: `payload` with what `options`
    mark secret (``options["redact"]``) redacted, or `HIDDEN` where that cannot be done.

    Takes what a row holds, whatever its types (a row can hold anything).
    """
    redact = options.get(_REDACT_OPTION) if isinstance(options, Mapping) else None
    if redact is None or (isinstance(redact, list | tuple) and not redact):
        return payload if isinstance(payload, str) else str(payload)
    if not isinstance(redact, list | tuple) or not isinstance(payload, str):
        return HIDDEN
    return redact_payload(payload, redact)


def _redact_option(func: Callable[..., Any]) -> tuple[object, ...]:
    """The names (or positions) given to ``@task(redact=[...])``, as a hashable tuple."""
    options = getattr(func, _OPTIONS_ATTRIBUTE, None)
    listed = options.get(_REDACT_OPTION, ()) if isinstance(options, Mapping) else ()
    if isinstance(listed, str):
        return (listed,)
    try:
        return tuple(listed)
    except TypeError:
        return ()


def _remember(func: Callable[..., Any]) -> tuple[int | str, ...]:
    """`func`'s answer, computed now and kept (a bound method's under its function)."""
    if isinstance(func, types.MethodType):
        known, key = _KNOWN_BOUND, func.__func__
    else:
        known, key = _KNOWN, func
    try:
        answer = known.get(key)
    except TypeError:  # unhashable: computed every time
        return _secret_parameters(func)
    if answer is None:
        answer = _secret_parameters(func)
        if len(known) >= _KEEP:
            known.clear()
        known[key] = answer
    return answer


def _secret_parameters(func: Callable[..., Any]) -> tuple[int | str, ...]:
    listed = _redact_option(func)
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # no signature to read: what @task(redact=...) says
        return tuple(dict.fromkeys(r for r in listed if _is_item(r)))
    hints = _hints(func)
    names = set(listed)
    out: list[int | str] = []
    for position, p in enumerate(parameters):
        if not (p.name in names or _is_secret(hints.get(p.name, p.annotation))):
            continue
        names.discard(p.name)
        if p.kind is p.POSITIONAL_ONLY:
            out.append(position)
        elif p.kind is p.POSITIONAL_OR_KEYWORD:
            out += [position, p.name]
        elif p.kind is p.VAR_POSITIONAL:
            out.append(ALL_POSITIONAL)
        elif p.kind is p.KEYWORD_ONLY:
            out.append(p.name)
        else:
            out.append(ALL_KEYWORD)
    out += [r for r in listed if r in names and _is_item(r)]  # keys of a **kwargs, say
    return tuple(dict.fromkeys(out))


def _is_item(value: object) -> TypeGuard[int | str]:
    return type(value) is str or (type(value) is int and value >= 0)


def _hints(func: Callable[..., Any]) -> dict[str, Any]:
    """`func`'s resolved annotations with their ``Annotated`` extras, or {} if they
    cannot all be resolved (the raw annotations are read instead)."""
    target: Any = func
    if isinstance(func, functools.partial):
        target = func.func
    elif isinstance(func, type):
        target = vars(func).get("__init__", func)
    elif not (inspect.isfunction(func) or inspect.ismethod(func)):
        target = type(func).__call__
    try:
        return get_type_hints(target, include_extras=True)
    except Exception:  # a name that does not resolve, a broken annotation: any of them
        return {}


def _is_secret(annotation: object, depth: int = 0) -> bool:
    """Whether `annotation` carries the `Secret` marker, at any depth of ``Annotated``,
    ``Optional``, unions and generics (a string that cannot be resolved: names it)."""
    if isinstance(annotation, str):
        return bool(_SECRET_WORD.search(annotation))
    if depth > 8:
        return False
    metadata = (
        getattr(annotation, "__metadata__", ()) if get_origin(annotation) is Annotated else ()
    )
    if any(m is Secret or isinstance(m, Secret) for m in metadata):
        return True
    return any(_is_secret(a, depth + 1) for a in get_args(annotation))
