"""The keeper's notion of now: wall time, or (tests, benchmarks) another process's clock
followed as an offset, so the sandbox's compressed time moves the keeper too."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Protocol

import httpx

from servicekit import bounded_json

log = logging.getLogger(__name__)


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sync(self) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sync(self) -> None:
        return None


class ManualClock:
    """In-process tests: moves only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self.value = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self.value

    async def sync(self) -> None:
        return None


class FollowedClock:
    """Wall time plus the offset read from `url` ({"now": epoch}) at each sync."""

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self._url = url
        self._http = http
        self._offset = 0.0

    def now(self) -> datetime:
        return datetime.fromtimestamp(time.time() + self._offset, UTC)

    async def sync(self) -> None:
        try:
            reply = await self._http.get(self._url, timeout=5.0)
            reply.raise_for_status()
            remote = float(bounded_json.loads(reply.content)["now"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as failed:
            log.warning("keeper clock: %s unreadable (%s)", self._url, type(failed).__name__)
            return
        # Only forward, as the followed clock itself moves.
        self._offset = max(self._offset, remote - time.time())
