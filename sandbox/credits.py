"""Zoho's API credits and concurrency, per org, counted in one place (the Zoho middleware).

Every CRM and Desk call made with a live token costs its org credits (one; a COQL handler
says more with `charge(request, credits)`) inside a rolling 24 hours on the sandbox clock.
Editions give the allowance (Free 5,000; Standard 50,000 + 250 a user; Professional 50,000 +
500; Enterprise and Ultimate 50,000 + 1,000) and the calls in flight (5/10/15/20/25), or a
test sets numbers. Once half the allowance is spent, answers carry
`X-API-CREDITS-REMAINING`; past it, or past the calls in flight, 429 TOO_MANY_REQUESTS.

An org without an edition (config `credits_default_edition`, "none" by default) is counted but
never limited, so long benchmarks of other parts keep running; tests of the limits set one.
In flight counts the handler and an injected latency, not a `hang` fault (a stuck
connection that tests of timeouts open by the dozen).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

WINDOW_SECONDS = 24 * 3600
HEADER = "X-API-CREDITS-REMAINING"
CREDITS_KEY = web.RequestKey("sandbox_call_credits", int)
# edition -> (base credits, credits per user, calls in flight)
EDITIONS: dict[str, tuple[int, int, int]] = {
    "free": (5_000, 0, 5),
    "standard": (50_000, 250, 10),
    "professional": (50_000, 500, 15),
    "enterprise": (50_000, 1_000, 20),
    "ultimate": (50_000, 1_000, 25),
}
NO_EDITION = "none"


class CreditsError(ValueError):
    pass


@dataclass
class OrgCredits:
    edition: str = NO_EDITION
    users: int = 1
    allowance: int | None = None  # a set number instead of the edition's
    max_in_flight: int | None = None
    spent: deque[tuple[float, int]] = field(default_factory=deque)
    used: int = 0  # credits inside the window
    in_flight: int = 0
    credits_by_kind: Counter[str] = field(default_factory=Counter)
    calls_by_kind: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)  # "credits", "concurrency"

    def limit(self) -> int | None:
        if self.allowance is not None:
            return self.allowance
        preset = EDITIONS.get(self.edition)
        return None if preset is None else preset[0] + preset[1] * self.users

    def concurrency(self) -> int | None:
        if self.max_in_flight is not None:
            return self.max_in_flight
        preset = EDITIONS.get(self.edition)
        return None if preset is None else preset[2]

    def used_at(self, now: float) -> int:
        horizon = now - WINDOW_SECONDS
        while self.spent and self.spent[0][0] <= horizon:
            self.used -= self.spent.popleft()[1]
        return self.used

    def spend(self, now: float, kind: str, credits: int) -> None:
        self.spent.append((now, credits))
        self.used += credits
        self.credits_by_kind[kind] += credits
        self.calls_by_kind[kind] += 1

    def as_json(self, now: float) -> dict[str, Any]:
        limit = self.limit()
        used = self.used_at(now)
        return {
            "edition": self.edition,
            "users": self.users,
            "allowance": limit,
            "used": used,
            "remaining": None if limit is None else max(0, limit - used),
            "in_flight": self.in_flight,
            "max_in_flight": self.concurrency(),
            "credits_by_kind": dict(self.credits_by_kind),
            "calls_by_kind": dict(self.calls_by_kind),
            "rejected": dict(self.rejected),
        }


class CreditBook:
    def __init__(self) -> None:
        self.orgs: dict[tuple[str, str], OrgCredits] = {}

    def clear(self) -> None:
        self.orgs.clear()

    def org(self, app: str, key: str, default_edition: str = NO_EDITION) -> OrgCredits:
        found = self.orgs.get((app, key))
        if found is None:
            found = self.orgs[(app, key)] = OrgCredits(edition=default_edition)
        return found

    def configure(
        self, org: OrgCredits, *, edition: str | None = None, **numbers: int | None
    ) -> OrgCredits:
        """Set an org's edition, users, and optional fixed allowance / calls in flight
        (null: the edition's)."""
        if edition is not None:
            if edition.lower() not in (*EDITIONS, NO_EDITION):
                raise CreditsError(f"edition must be one of {[*EDITIONS, NO_EDITION]}")
            org.edition = edition.lower()
        for name, value in numbers.items():
            if name not in ("users", "allowance", "max_in_flight"):
                raise CreditsError(f"unknown credits setting {name!r}")
            if value is None and name != "users":
                setattr(org, name, None)
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise CreditsError(f"{name!r} must be a number >= 1")
            setattr(org, name, value)
        return org

    def admit(self, org: OrgCredits, now: float) -> str | None:
        """Why a new call must be refused ("credits", "concurrency"), or None."""
        limit = org.limit()
        if limit is not None and org.used_at(now) >= limit:
            return "credits"
        cap = org.concurrency()
        if cap is not None and org.in_flight >= cap:
            return "concurrency"
        return None


def charge(request: web.Request, credits: int) -> None:
    """This call costs `credits` instead of one (COQL: 1, 2 or 3 by LIMIT)."""
    request[CREDITS_KEY] = credits


def credits_of(request: web.Request) -> int:
    return request.get(CREDITS_KEY, 1)


def remaining_header(org: OrgCredits, now: float) -> str | None:
    """The header's value once half the allowance is spent, else None."""
    limit = org.limit()
    if limit is None:
        return None
    used = org.used_at(now)
    return str(max(0, limit - used)) if used * 2 >= limit else None
