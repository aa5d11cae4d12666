"""Logging a store outage once when it starts and once when it ends, not once per call."""

from __future__ import annotations

import logging
import time

from ..errors import AfterwardError

__all__ = ["StoreHealth"]

log = logging.getLogger("afterward.worker")


class StoreHealth:
    """Tracks whether the store answered the last call of any of a runner's loops."""

    def __init__(self) -> None:
        self._down_since: float | None = None

    def failed(self, doing: str, error: Exception) -> None:
        """A call failed: warn if this starts an outage, else note it at debug level.

        An error that is not the store's (out of memory, no thread to be had) is no outage:
        it is logged as an error each time.
        """
        if not isinstance(error, AfterwardError):
            log.error("%s failed (%s: %s); trying again", doing, type(error).__name__, error)
            return
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "store unavailable while %s (%s); retrying with backoff until it answers",
                doing,
                error,
            )
        else:
            log.debug("store still unavailable while %s (%s)", doing, error)

    def answered(self) -> None:
        """A call succeeded: report the end of an outage, if there was one."""
        if self._down_since is not None:
            log.warning("store answers again after %.1f s", time.monotonic() - self._down_since)
            self._down_since = None
