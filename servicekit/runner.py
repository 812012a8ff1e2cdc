"""One way to run a service, for the CLIs and the tests' fixtures alike: start it, serve
until SIGTERM or SIGINT, then health NOT_SERVING, drain, stop, exit code 0.

A service is anything with `start(...) -> HOST:PORT` and `stop(grace)`: the broker, the
notifier, the notifier's ingress alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Service(Protocol):
    @property
    def start(self) -> Callable[..., Awaitable[str]]:
        """Starts serving (options such as `migrate` are the service's); returns HOST:PORT."""

    async def stop(self, grace: float | None = None) -> None:
        """Stops serving, draining for `grace` seconds (its own setting when None), and
        releases everything it holds; safe after a start that failed."""


@contextlib.asynccontextmanager
async def running(
    service: Service, *, grace: float | None = None, **start_options: Any
) -> AsyncIterator[str]:
    """The service started (its address), stopped on leaving, even if it failed to start."""
    try:
        address = await service.start(**start_options)
    except BaseException:
        await service.stop(0)
        raise
    try:
        yield address
    finally:
        await service.stop(grace)


async def run_until_signal(
    service: Service,
    *,
    first_line: str = "listening on",
    on_started: Callable[[], None] | None = None,
    **start_options: Any,
) -> int:
    """Serves until SIGTERM or SIGINT, then drains and returns the exit code 0.
    `on_started` runs right after the first line (the notifier prints its ingress's)."""
    # Handlers before the service starts: a supervisor may send SIGTERM the moment it reads
    # `listening on`, and a signal that arrives before them would kill the process (-15).
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    async with running(service, **start_options) as address:
        # The first line of stdout is a contract: tests and scripts read the port from it.
        print(f"{first_line} {address}", flush=True)
        if on_started is not None:
            on_started()
        log.info("serving on %s", address)
        await stopping.wait()
        log.info("shutting down: health NOT_SERVING, then draining")
    log.info("stopped")
    return 0
