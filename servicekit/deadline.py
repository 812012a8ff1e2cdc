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
    def of(cls, context: grpc.aio.ServicerContext) -> Deadline:
        return cls(context.time_remaining())

    @classmethod
    def unbounded(cls) -> Deadline:
        return cls(None)

    def left(self) -> float | None:
        return None if self._at is None else self._at - time.monotonic()

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
