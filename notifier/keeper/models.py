"""The keeper's tables, beside the subscriptions (migration n0002).

Each row is claimed by a compare-and-set on `version` (as the broker's refresh lease is):
the replica whose UPDATE matched holds the lease until `lease_until`, and writes its
result only while the version is still the one it set, so a replica that stalled past
its lease cannot overwrite what the one that took over did."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from notifier.database.models import Base
from servicekit.database import UTCDateTime


class KeeperSubscription(Base):
    __tablename__ = "notifier_keeper_subscriptions"
    __table_args__ = (
        Index("ix_notifier_keeper_subscriptions_due", "renew_at"),
        Index("ix_notifier_keeper_subscriptions_user", "user_id", "app_type"),
    )

    subscription_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    app_type: Mapped[int] = mapped_column(Integer, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    # CRM: when the channel is next renewed (its spread due time, or a retry).
    renew_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    # The last time the keeper saw it healthy at Zoho: a gap starts here.
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class KeeperUser(Base):
    __tablename__ = "notifier_keeper_users"
    __table_args__ = (Index("ix_notifier_keeper_users_due", "reconcile_at"),)

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    app_type: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    reconcile_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The broker's reason (REAUTH_REQUIRED, MISSING_SCOPE, ...) while Zoho is not called.
    blocked: Mapped[str | None] = mapped_column(String(32))
