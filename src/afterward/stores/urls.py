"""Store URLs as they may be shown: `redact_url` hides their passwords.

Every message that names a store URL passes it through `redact_url`, so that a password
never reaches a log, an error or a terminal, whatever the URL looks like.
"""

from __future__ import annotations

import re

__all__ = ["HIDDEN_PASSWORD", "redact_url"]

HIDDEN_PASSWORD = "***"
"""What a password is shown as."""

_AUTHORITY_END = re.compile(r"[/?#]")
_SECRET_PARAMETER = re.compile(
    r"(?P<name>(?:^|[?&;])[^=&;#]*(?:pass|secret|token|key)[^=&;#]*=)(?P<value>[^&;#]*)",
    re.IGNORECASE,
)
"""A query parameter whose name says it holds a secret: ``password=``, ``sslpassword=``,
``token=``, ``api_key=``…"""


def redact_url(url: str) -> str:
    """`url` with each password replaced by ``***``: in its user info
    (``postgresql://ann:***@host/db``) and in query parameters named like one
    (``?password=***``). Scheme, user, host, path and other parameters are kept as they
    are. Never raises: anything that is not a URL is handled as text.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:  # "ann:pw@host/db", "sqlite:relative.db": no authority, or no scheme
        scheme, rest = "", url
    end = _AUTHORITY_END.search(rest)
    authority, tail = (rest[: end.start()], rest[end.start() :]) if end else (rest, "")
    user_info, at, host = authority.rpartition("@")
    if at and ":" in user_info:
        authority = f"{user_info.partition(':')[0]}:{HIDDEN_PASSWORD}@{host}"
    path, mark, query = tail.partition("?")
    if mark:
        query = _SECRET_PARAMETER.sub(rf"\g<name>{HIDDEN_PASSWORD}", query)
    return f"{scheme}{sep}{authority}{path}{mark}{query}"
