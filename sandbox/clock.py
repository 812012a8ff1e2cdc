"""The sandbox's controllable clock.

Every expiry, rolling window and timestamp the sandbox hands out reads this clock, so a test
can expire tokens or roll Zoho's 10-minute mint window with one control call instead of
sleeping. It is wall time plus an offset that only ever grows: real time keeps flowing,
which keeps latency-based tests honest.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        """Seconds since the epoch, as the sandbox sees them."""
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            # Going back would let already-spent mint budget or expired tokens come back to
            # life, which Zoho never does.
            raise ValueError("the clock only moves forward")
        self._offset += seconds
        return self.now()

    @property
    def offset(self) -> float:
        return self._offset

    def reset(self) -> None:
        self._offset = 0.0


def iso_with_offset(epoch: float) -> str:
    """ISO-8601 with a numeric offset, as CRM writes `channel_expiry`."""
    return datetime.fromtimestamp(int(epoch), UTC).isoformat()


def iso_millis_z(epoch: float) -> str:
    """Desk's timestamp style: `2019-12-12T10:42:52.000Z`."""
    dt = datetime.fromtimestamp(epoch, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> float | None:
    """Epoch seconds of an ISO-8601 string with an offset, or None if it is not one."""
    try:
        dt = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    if dt.tzinfo is None:
        return None
    return dt.timestamp()
