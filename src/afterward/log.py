"""Where afterward's log lines go, and how an app takes them over.

afterward logs under the ``afterward`` logger (``afterward.worker``, ``afterward.store``, ...)
and never touches the root logger. When an app has not configured logging (neither the
``afterward`` logger nor the root logger has a handler when an `Afterward` is created),
afterward shows its own records, INFO and above, on standard error with their time and
level::

    2025-01-31 12:00:00,123 WARNING afterward.worker task 'f3a…' failed (attempt 1/3) ...

Without that, plain ``uvicorn app:app``, which configures only its own ``uvicorn`` loggers,
would drop afterward's INFO lines and print its warnings bare, without time or level.

An app takes over by configuring logging, before or after it creates its `Afterward`:

- a handler on the root logger (``logging.basicConfig``, ``dictConfig``,
  ``uvicorn --log-config``) or on the ``afterward`` logger: afterward's records propagate
  to it as any library's do, and the default handler stands aside (it never prints a
  record that another handler on its way up prints), so no line shows twice;
- the level: ``AFTERWARD_LOG_LEVEL=WARNING`` in the environment, `configure_logging`
  ``(level="WARNING")``, or ``logging.getLogger("afterward").setLevel(...)``.

``afterward worker`` configures the root logger of its own processes (``--log-level``, the
same format), since they run the app's tasks, whose records show there too.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

from .errors import ConfigurationError

__all__ = ["FORMAT", "LEVEL_VARIABLE", "configure_logging", "configure_worker_logging"]

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
"""How a line of afterward's looks when afterward prints it (here and in the worker)."""

LEVEL_VARIABLE = "AFTERWARD_LOG_LEVEL"
"""The environment variable that sets the ``afterward`` logger's level."""

_LOGGER = "afterward"


def configure_logging(level: int | str | None = None) -> None:
    """Show afterward's records at `level` and above on standard error, with their time
    and level, unless the app's own logging shows them (see the module's docstring).

    Called with no level whenever an `Afterward` is created; call it yourself to choose
    the level in code.

    :param level: a level name (``"INFO"``, any case) or number; by default the
        ``AFTERWARD_LOG_LEVEL`` variable, else the ``afterward`` logger's own level, else
        INFO when afterward prints its records itself.
    :raises ConfigurationError: not a level.
    """
    logger = logging.getLogger(_LOGGER)
    chosen = level if level is not None else os.environ.get(LEVEL_VARIABLE) or None
    if chosen is not None:
        logger.setLevel(_level(chosen))
    if logger.handlers or logging.getLogger().handlers:
        return  # the app's logging (or an earlier call) shows afterward's records
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    handler = _DefaultHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)


def configure_worker_logging(level: int | str) -> None:
    """What ``afterward worker --log-level`` does in its processes: every logger's records
    at `level` and above on standard error, in afterward's format (the root logger, as
    `logging.basicConfig` sets it; the worker process is afterward's own).

    :raises ConfigurationError: not a level.
    """
    logging.basicConfig(level=_level(level), format=FORMAT)


def _level(level: int | str) -> int:
    if isinstance(level, int):
        return level
    name = level.strip().upper()
    if name.isdigit():
        return int(name)
    number = logging.getLevelNamesMapping().get(name)
    if number is None:
        raise ConfigurationError(
            f"{level!r} is not a logging level: give DEBUG, INFO, WARNING, ERROR or CRITICAL "
            f"(in {LEVEL_VARIABLE} or --log-level)"
        )
    return number


class _DefaultHandler(logging.StreamHandler[TextIO]):
    """Prints to the standard error of the moment (as `logging.lastResort` does), unless
    another handler on the record's way up the loggers prints it."""

    def emit(self, record: logging.LogRecord) -> None:
        if not self._others_handle(record):
            self.stream = sys.stderr  # the one of the moment: pytest and others swap it
            super().emit(record)

    def _others_handle(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            if any(handler is not self for handler in logger.handlers):
                return True
            if not logger.propagate:
                return False
            logger = logger.parent
        return False
