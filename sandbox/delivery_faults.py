"""Faults a test can put on outbound callbacks: each applies to the next `count`
deliveries (of one app or subscription, if named), as Zoho's own misbehaviour would.

- `duplicate`: the same body is POSTed twice.
- `reorder`: this delivery waits (up to a second) for the next one of its subscription and
  goes out after it.
- `delay`: sent `delay_ms` later, apart from its lane (later ones overtake it).
- `wrong_url`: sent to `url` instead (still only to hosts --deliver-to allows).
- `retry`: a failed delivery is tried again up to `retries` times, `backoff_ms` apart
  (Zoho does not retry; this models a receiver-side proxy or a future Zoho that does).
- `drop`: nothing is sent (the record still changed), logged with status "dropped", as Zoho
  loses callbacks: the next `count`; or each with `probability` (drawn from `seed`, at most
  `count` drops, null: unlimited); or every one between sandbox times `start` and `end` ("the
  receiver was unreachable").
"""

from __future__ import annotations

import itertools
import random
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("duplicate", "reorder", "delay", "wrong_url", "retry", "drop")


class DeliveryFaultError(ValueError):
    pass


@dataclass
class DeliveryFault:
    id: int
    kind: str
    remaining: int | None  # None: until cleared
    app: str | None = None
    subscription: str | None = None
    delay_ms: int = 0
    url: str | None = None
    retries: int = 0
    backoff_ms: int = 0
    probability: float | None = None  # drop: each delivery with this chance
    seed: int | None = None
    start: float | None = None  # drop: a window of sandbox time
    end: float | None = None
    dropped: int = 0
    _rng: random.Random | None = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        shown = asdict(self)
        shown.pop("_rng")
        return shown

    def drops(self, now: float) -> bool:
        """Does this drop fault take a delivery made at `now`?"""
        if self.start is not None and not self.start <= now < (self.end or float("inf")):
            return False
        if self.probability is not None:
            if self._rng is None:
                self._rng = random.Random(self.seed)
            return self._rng.random() < self.probability
        return True

    def matches(self, app: str, subscription: str) -> bool:
        return (self.app is None or self.app == app) and (
            self.subscription is None or self.subscription == subscription
        )


@dataclass
class DeliveryPlan:
    """What the faults make of one delivery."""

    duplicate: bool = False
    reorder: bool = False
    delay_seconds: float = 0.0
    url: str | None = None
    retries: int = 0
    backoff_seconds: float = 0.0
    drop: bool = False


class DeliveryFaults:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._faults: list[DeliveryFault] = []

    def clear(self) -> None:
        self._faults = []

    def active(self) -> list[DeliveryFault]:
        return list(self._faults)

    def add(self, kind: str, *, count: int | None = 1, **options: Any) -> DeliveryFault:
        if kind not in KINDS:
            raise DeliveryFaultError(f"unknown delivery fault {kind!r}; known: {', '.join(KINDS)}")
        if count is not None and count < 1:
            raise DeliveryFaultError("count must be >= 1, or null for until cleared")
        if options.get("app") not in (None, "crm", "desk"):
            raise DeliveryFaultError("app must be 'crm' or 'desk'")
        if kind == "delay" and options.get("delay_ms", 0) <= 0:
            raise DeliveryFaultError("delay needs delay_ms > 0")
        if kind == "wrong_url" and not str(options.get("url") or "").startswith(
            ("http://", "https://")
        ):
            raise DeliveryFaultError("wrong_url needs an http(s) url")
        if kind == "retry" and options.get("retries", 0) < 1:
            raise DeliveryFaultError("retry needs retries >= 1")
        probability = options.get("probability")
        if probability is not None and not 0 < probability <= 1:
            raise DeliveryFaultError("probability must be in (0, 1]")
        start, end = options.get("start"), options.get("end")
        if start is not None and end is not None and end <= start:
            raise DeliveryFaultError("end must be after start")
        if kind != "drop" and (probability is not None or start is not None):
            raise DeliveryFaultError("probability and start/end are options of drop")
        fault = DeliveryFault(next(self._ids), kind, count, **options)
        self._faults.append(fault)
        return fault

    def plan_for(self, app: str, subscription: str, now: float) -> DeliveryPlan:
        plan = DeliveryPlan()
        if not self._faults:
            return plan
        for fault in self._faults:
            if not fault.matches(app, subscription):
                continue
            if fault.kind == "drop":
                if plan.drop or not fault.drops(now):
                    continue
                plan.drop = True
                fault.dropped += 1
            elif fault.kind == "duplicate":
                plan.duplicate = True
            elif fault.kind == "reorder":
                plan.reorder = True
            elif fault.kind == "delay":
                plan.delay_seconds = fault.delay_ms / 1000
            elif fault.kind == "wrong_url":
                plan.url = fault.url
            elif fault.kind == "retry":
                plan.retries, plan.backoff_seconds = fault.retries, fault.backoff_ms / 1000
            if fault.remaining is not None:
                fault.remaining -= 1
        self._faults = [
            f
            for f in self._faults
            if (f.remaining is None or f.remaining > 0) and (f.end is None or f.end > now)
        ]
        return plan
