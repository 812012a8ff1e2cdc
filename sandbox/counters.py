"""What Zoho received: per-route call records and token-endpoint outcomes.

Tests assert on these ("Zoho received exactly one mint", "the retry carried the new token").
Records hold token values because tests compare them; they leave the process only through the
loopback-only control API, never through logs. The log is bounded so a long benchmark cannot
grow it without limit.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

MAX_RECORDS = 100_000


@dataclass
class CallRecord:
    seq: int
    at: float  # sandbox clock
    route: str
    method: str
    path: str
    authorization: bool  # was an Authorization header present at all
    token: str | None  # the access token after `Zoho-oauthtoken `, if any
    org_id: str | None  # Desk's orgId header or query parameter
    grant_type: str | None = None  # token endpoint only
    refresh_token: str | None = None  # token endpoint (refresh grant) and revoke
    status: int | None = None  # None when the connection was reset or never answered
    outcome: str | None = None  # token endpoint: success, invalid_code, throttled, fault...
    # CRM watch writes: the channel ids the body named, so a test can count writes per channel.
    channel_ids: list[str] | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class CallLog:
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.records: deque[CallRecord] = deque(maxlen=MAX_RECORDS)
        self.per_route: Counter[str] = Counter()
        self.token_outcomes: Counter[str] = Counter()
        self._seq = 0

    def start(
        self,
        *,
        at: float,
        route: str,
        method: str,
        path: str,
        authorization: bool,
        token: str | None,
        org_id: str | None,
    ) -> CallRecord:
        self._seq += 1
        record = CallRecord(
            seq=self._seq,
            at=at,
            route=route,
            method=method,
            path=path,
            authorization=authorization,
            token=token,
            org_id=org_id,
        )
        self.records.append(record)
        self.per_route[route] += 1
        return record

    def outcome(self, record: CallRecord, outcome: str) -> None:
        record.outcome = outcome
        if record.route == "token":
            self.token_outcomes[outcome] += 1

    def select(self, route: str | None = None) -> list[CallRecord]:
        if route is None:
            return list(self.records)
        return [r for r in self.records if r.route == route]
