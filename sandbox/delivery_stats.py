"""What the sandbox delivered: a bounded log of every attempt and, per subscription, the
receiver's status codes and latencies (tests and the benchmark read both)."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.delivery import Delivery

MAX_LOG = 100_000
MAX_LATENCIES = 10_000


@dataclass
class Outcome:
    seq: int
    app: str
    subscription: str
    url: str
    # The receiver's HTTP status, or "timeout", "error" (no answer), "blocked" (a host
    # --deliver-to does not allow: nothing was sent).
    status: int | str
    latency_ms: float
    attempt: int
    note: str  # "", "duplicate", "wrong_url"
    body: str

    @property
    def ok(self) -> bool:
        # Desk counts only 200 as delivered (docs/zoho.md section 4); CRM any 2xx.
        if not isinstance(self.status, int):
            return False
        return self.status == 200 if self.app == "desk" else 200 <= self.status < 300

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SubscriptionStats:
    app: str
    subscription: str
    attempts: int = 0
    delivered: int = 0  # answered 2xx (Desk: 200)
    failed: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_LATENCIES))

    def as_json(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)

        def pick(q: float) -> float | None:
            return (
                round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3) if ordered else None
            )

        return {
            "app": self.app,
            "subscription": self.subscription,
            "attempts": self.attempts,
            "delivered": self.delivered,
            "failed": self.failed,
            "statuses": dict(self.statuses),
            "latency_ms": {
                "count": len(ordered),
                "p50": pick(0.5),
                "p99": pick(0.99),
                "max": round(ordered[-1], 3) if ordered else None,
            },
        }


class DeliveryLog:
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.entries: deque[Outcome] = deque(maxlen=MAX_LOG)
        self.stats: dict[tuple[str, str], SubscriptionStats] = {}

    def record(
        self,
        seq: int,
        delivery: Delivery,
        url: str,
        status: int | str,
        latency_ms: float,
        attempt: int,
        note: str,
    ) -> Outcome:
        outcome = Outcome(
            seq,
            delivery.app,
            delivery.subscription,
            url,
            status,
            round(latency_ms, 3),
            attempt,
            note,
            delivery.body.decode(),
        )
        self.entries.append(outcome)
        key = (delivery.app, delivery.subscription)
        stats = self.stats.get(key)
        if stats is None:
            stats = self.stats[key] = SubscriptionStats(delivery.app, delivery.subscription)
        stats.attempts += 1
        stats.statuses[str(status)] += 1
        if outcome.ok:
            stats.delivered += 1
        else:
            stats.failed += 1
        if status not in ("blocked", "dropped"):
            stats.latencies_ms.append(latency_ms)
        return outcome

    def select(self, app: str | None = None, subscription: str | None = None) -> list[Outcome]:
        return [
            e
            for e in self.entries
            if (app is None or e.app == app)
            and (subscription is None or e.subscription == subscription)
        ]
