"""A subscription as the notifier's code reads it: the record of a notifier_subscriptions
row (store.py builds it; the keeper's reads extend it with their bookkeeping), so mypy
checks every attribute its readers use."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Row

from notifier.app_types import AppType


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    user_id: str
    app_type: AppType
    # The event names asked for (the column holds them as a JSON list).
    events: tuple[str, ...]
    status: str
    # The CRM channel_id or the Desk webhook id (None until Desk answered the create).
    zoho_id: str | None
    secret_digest: str = field(repr=False)
    # CRM's channel token, sealed (notifier/subscriptions/store.py load_keys).
    secret_sealed: str | None = field(repr=False)
    desk_org_id: str | None
    jwks_url: str | None
    desk_jwt_required: bool
    notify_on_related_action: bool
    return_affected_field_values: bool
    expires_at: datetime | None
    last_renewed_time: datetime | None
    last_event_time: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    covered_until: datetime | None

    @property
    def channel_id(self) -> str:
        """A CRM subscription's channel_id (its zoho_id): the notifier chooses it and
        writes it with the row (service.py), so a CRM row always has one."""
        return self.zoho_id or ""

    @classmethod
    def of(cls, row: Row[*tuple[Any, ...]]) -> Self:
        """The record of a row holding (at least) the columns named as its fields: a
        column missing from the query fails here, not in a reader far away."""
        columns = row._mapping
        values = {f.name: columns[f.name] for f in fields(cls)}
        values["events"] = tuple(json.loads(values["events"]))
        return cls(**values)
