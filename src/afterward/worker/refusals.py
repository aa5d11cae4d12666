"""Why a runner refuses a stored row, in words safe to store and log."""

from __future__ import annotations

import pydantic

from ..errors import UnknownFunction

__all__ = ["refusal_reason"]


def refusal_reason(error: Exception, *, secret: bool, limit: int = 2000) -> str:
    """Why a row was refused, without quoting its arguments, cut to `limit` characters (a
    hostile row's name or payload can be huge). pydantic's messages quote the input, which
    may be a secret (see `calls.redaction`) or megabytes of junk. For a task with secret
    parameters, only the kind of error is kept (a decoder's message, such as a date's, may
    quote the value)."""
    text = _reason(error, secret=secret)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _reason(error: Exception, *, secret: bool) -> str:
    """Why a row was refused, without quoting its arguments: pydantic's messages quote
    the input, which may be a secret (see `calls.redaction`) or megabytes of junk. For a
    task with secret parameters, only the kind of error is kept (a decoder's message, such
    as a date's, may quote the value)."""
    if secret and not isinstance(error, UnknownFunction):
        return (
            f"{type(error).__name__}: the stored arguments do not fit the function "
            "(details not shown: the task has secret parameters)"
        )
    if isinstance(error, pydantic.ValidationError):
        parts = [
            f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}"
            for e in error.errors(include_url=False, include_input=False)[:5]
        ]
        return f"ValidationError: {error.error_count()} invalid argument(s): {'; '.join(parts)}"
    return f"{type(error).__name__}: {error}"
