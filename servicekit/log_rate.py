"""Log lines an outsider can cause, at most one per interval.

A flood of bad requests, or a listener out of file descriptors, must not become a flood
of log lines (issue 22: 223,343 ERROR lines in 25 s under a 256-file limit): the first
occurrence is logged, the rest are counted and reported with the next line."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from servicekit.metrics import ACCEPT_FAILURES

log = logging.getLogger(__name__)

# asyncio's own words when accept() fails with EMFILE, ENFILE, ENOBUFS or ENOMEM; it then
# stops accepting on that listener for a second and tries again.
_ACCEPT_FAILED = "socket.accept() out of system resource"


class Occasional:
    """A WARNING logged at most once per `interval` seconds, with how many were held back."""

    def __init__(self, logger: logging.Logger, interval: float) -> None:
        self._log = logger
        self._interval = interval
        self._last = -float("inf")
        self._held_back = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            self._held_back += 1
            return
        if self._held_back:
            message += " (and %d more like it since the last such line)"
            args = (*args, self._held_back)
        self._last, self._held_back = now, 0
        self._log.warning(message, *args)


def limit_accept_failure_logs(loop: asyncio.AbstractEventLoop, interval: float = 60.0) -> None:
    """asyncio logs each failed accept at ERROR with a traceback, once a second per
    listener for as long as the process lacks descriptors: one counted WARNING line per
    `interval` instead. Other exceptions reach the handler that was there before."""
    previous = loop.get_exception_handler()
    if getattr(previous, "limits_accept_failures", False):
        return
    occasional = Occasional(log, interval)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == _ACCEPT_FAILED:
            ACCEPT_FAILURES.inc()
            occasional.warning(
                "accepting a connection failed (%s); retrying every second",
                type(context.get("exception")).__name__ + ": "
                + str(getattr(context.get("exception"), "strerror", "")),
            )
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler.limits_accept_failures = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)
