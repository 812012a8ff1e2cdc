"""Jittered exponential backoff between reconnects ("full jitter")."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    initial_seconds: float = 0.1
    max_seconds: float = 10.0
    multiplier: float = 2.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before reconnect `attempt` (0 first); never less than the
        server's RetryInfo when it sent one."""
        ceiling = min(self.max_seconds, self.initial_seconds * self.multiplier ** attempt)
        wait = random.uniform(0.0, ceiling)
        return max(wait, retry_after or 0.0)
