"""Stored text made safe to print: shown as it is, never obeyed by Rich or the terminal.

Whoever can enqueue a task decides its id, function name, queue and arguments, and what
its exception says; a row can hold anything at all. Printed as Rich markup, ``[/]`` made
a whole listing raise and ``[link=…]`` made links; printed raw, an ESC or OSC sequence
drives the operator's terminal. `shown` turns any stored value into a `rich.text.Text`
(which Rich never reads as markup) in which every control character, invisible
formatting character, bidirectional override, line separator and lone surrogate is
written as its escape (``\\x1b``, ``\\u202e``) in reverse video, and a value past `limit`
characters is cut with a note of its length.
"""

from __future__ import annotations

import re

from rich.text import Span, Text

__all__ = ["CELL_LIMIT", "FULL_LIMIT", "shown"]

CELL_LIMIT = 300
"""Characters of one stored value shown in a table cell of a listing."""
FULL_LIMIT = 64 * 1024
"""Characters of one stored value shown in full (`afterward show`) before it is cut."""

_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ud800-\udfff\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f]+"
)
"""Unicode's control (Cc), format (Cf), line and paragraph separator (Zl, Zp) and
surrogate (Cs) characters: none prints as itself, some drive the terminal."""
_UNSAFE_KEEPING_LINES = re.compile(_UNSAFE.pattern.replace("\x00-\x1f", "\x00-\x08\x0b-\x1f"))
"""The same less newline and tab, for text of many lines (a traceback)."""
_ESCAPE_STYLE = "reverse"
_NOTE_STYLE = "dim italic"


def shown(
    value: object, *, limit: int | None = CELL_LIMIT, lines: bool = False, style: str = ""
) -> Text:
    """`value` (a stored string, or anything: rows can hold other types) as text to print.

    :param limit: characters shown at most (None: all); the rest is replaced by a note
        ``… (N characters)`` giving the whole length.
    :param lines: keep newlines and tabs (a traceback); otherwise they are escaped too,
        so that one value is one line.
    """
    text = value if isinstance(value, str) else str(value)
    length = len(text)
    if limit is not None and length > limit:
        text = text[:limit]
    unsafe = _UNSAFE_KEEPING_LINES if lines else _UNSAFE
    pieces: list[str] = []
    spans: list[Span] = []
    at = start = 0
    for match in unsafe.finditer(text):
        pieces.append(text[start : match.start()])
        at += match.start() - start
        escape = "".join(map(_escape, match.group()))
        pieces.append(escape)
        spans.append(Span(at, at + len(escape), _ESCAPE_STYLE))
        at += len(escape)
        start = match.end()
    pieces.append(text[start:])
    out = Text("".join(pieces), style=style, spans=spans)
    if len(text) < length:
        out.append(f"… ({length:,} characters)", style=_NOTE_STYLE)
    return out


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
