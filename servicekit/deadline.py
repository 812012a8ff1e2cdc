"""The caller's remaining time, handed on to every outbound call of an RPC."""

from __future__ import annotations

import time

import grpc

from servicekit.errors import DeadlineExceeded


class Deadline:
    """An absolute point in time (monotonic), or none when the caller set no deadline."""

    def __init__(self, seconds: float | None) -> None:
        self._at = None if seconds is None else time.monotonic() + seconds

    @classmethod
    def of(cls, context: grpc.aio.ServicerContext, *, margin: float = 0.0) -> Deadline:
        """The caller's deadline, less `margin` seconds kept to send the answer in."""
        left = context.time_remaining()
        return cls(None if left is None else max(0.0, left - margin))

    @classmethod
    def unbounded(cls) -> Deadline:
        return cls(None)

    def left(self) -> float | None:
        return None if self._at is None else self._at - time.monotonic()

    def capped(self, seconds: float) -> Deadline:
        """This deadline or `seconds` from now, whichever comes first."""
        left = self.left()
        return Deadline(seconds if left is None else min(left, seconds))

    def wait_seconds(self) -> float | None:
        """For asyncio.wait_for and the like: the time left, never negative; None: no limit."""
        left = self.left()
        return None if left is None else max(0.0, left)

    def timeout(self, cap: float) -> float:
        """Seconds the next call may take: the time left, at most `cap`.

        Raises once the time is up, so no call starts that the caller will not wait for.
        """
        left = self.left()
        if left is None:
            return cap
        if left <= 0:
            raise DeadlineExceeded("the caller's deadline passed")
        return min(cap, left)
