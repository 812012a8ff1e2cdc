"""Faults a test can inject per route: latency, 500s, hangs, resets, throttles, bad bodies.

A fault applies to the next N calls of its route (or until cleared when N is None). Latency
faults add up and run alongside; of the other kinds the oldest active one wins. `when="after"`
lets the real handler run first (a token is minted, a channel written) and only then spoils
the answer, which is how a client learns to cope with "Zoho did it but I never heard back".
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

ROUTES = (
    "token",
    "revoke",
    "crm.watch",
    "crm.users",
    "crm.org",
    # The read APIs change capture calls (issue 25's tests spoil them too).
    "crm.records",
    "crm.deleted",
    "crm.coql",
    "desk.orgs",
    "desk.webhooks",
)
KINDS = (
    "latency",  # add latency_ms, then answer normally
    "status_500",  # HTTP 500 in the route's own error style
    "hang",  # never answer (until the client gives up), or sleep `seconds` then answer
    "reset",  # abort the TCP connection (RST) without an answer
    "throttle",  # token: Zoho's "Access Denied" body; APIs: 429 TOO_MANY_REQUESTS
    "no_access_token",  # token only: HTTP 200 JSON without access_token
    "malformed",  # HTTP 200, JSON content type, truncated JSON
    "non_json",  # HTTP 200 HTML page, as a proxy or login page would answer
)


@dataclass
class Fault:
    id: int
    route: str
    kind: str
    remaining: int | None  # None: until cleared
    latency_ms: int = 0
    seconds: float | None = None  # hang: how long; None hangs until the client leaves
    when: str = "before"  # before or after the real handler runs

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class FaultError(ValueError):
    """A fault request that makes no sense; the control API answers 400 with its text."""


class FaultBook:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._by_route: dict[str, list[Fault]] = {}

    def clear(self, route: str | None = None) -> None:
        if route is None:
            self._by_route = {}
        else:
            self._by_route.pop(route, None)

    def add(
        self,
        route: str,
        kind: str,
        *,
        count: int | None = 1,
        latency_ms: int = 0,
        seconds: float | None = None,
        when: str = "before",
    ) -> Fault:
        if route not in ROUTES:
            raise FaultError(f"unknown route {route!r}; known: {', '.join(ROUTES)}")
        if kind not in KINDS:
            raise FaultError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        if kind == "no_access_token" and route != "token":
            raise FaultError("no_access_token only applies to the token route")
        if count is not None and count < 1:
            raise FaultError("count must be >= 1, or null for until cleared")
        if when not in ("before", "after"):
            raise FaultError("when must be 'before' or 'after'")
        if kind == "latency" and latency_ms <= 0:
            raise FaultError("latency needs latency_ms > 0")
        fault = Fault(next(self._ids), route, kind, count, latency_ms, seconds, when)
        self._by_route.setdefault(route, []).append(fault)
        return fault

    def active(self) -> list[Fault]:
        return [f for faults in self._by_route.values() for f in faults]

    def take(self, route: str) -> tuple[int, Fault | None]:
        """Consume this call's share: total added latency (ms) and the fault to act out."""
        faults = self._by_route.get(route)
        if not faults:
            return 0, None
        latency = 0
        chosen: Fault | None = None
        for fault in faults:
            if fault.kind == "latency":
                latency += fault.latency_ms
            elif chosen is None:
                chosen = fault
            else:
                continue
            if fault.remaining is not None:
                fault.remaining -= 1
        self._by_route[route] = [f for f in faults if f.remaining is None or f.remaining > 0]
        return latency, chosen
