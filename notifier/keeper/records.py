"""The keeper's rows as records: a kept subscription with its bookkeeping, and a user
whose subscriptions are reconciled (reads.py builds them; the tables are models.py's)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Row

from notifier.app_types import AppType
from notifier.subscriptions.records import Subscription


@dataclass(frozen=True, slots=True)
class Kept(Subscription):
    """A subscription joined with its notifier_keeper_subscriptions row."""

    # The fence: a claim or a write matches only the version it read.
    version: int
    lease_owner: str | None
    attempts: int
    # The last time the keeper saw it healthy at Zoho: a gap starts here.
    verified_at: datetime | None
    # CRM: when the channel is next renewed.
    renew_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeptUser:
    """A notifier_keeper_users row: one user's subscriptions of one app, reconciled
    together."""

    user_id: str
    app_type: AppType
    version: int
    reconcile_at: datetime
    lease_owner: str | None
    lease_until: datetime | None
    # The broker's reason while Zoho is not called for this user.
    blocked: str | None

    @classmethod
    def of(cls, row: Row[*tuple[Any, ...]]) -> Self:
        columns = row._mapping
        return cls(**{f.name: columns[f.name] for f in fields(cls)})
