"""Change capture's tables (migration n0005_capture).

`notifier_capture_cursors`: one row per subscription and module its events cover, holding
the watermark `covered_until` (Zoho's clock: every change of that module up to it is in
the event log). A read-back of the window after it is claimed by a compare-and-set on
`version`, as the keeper claims renewals, so one replica reads a window; the watermark is
written only under that fence, in the transaction that appends the window's events.

`notifier_capture_credits`: the credits read-backs spent, one row per call, per Zoho org
and app; summed over a rolling 24 hours by every replica (as the broker counts mints).
`notifier_capture_orgs` is the row each spend locks first, so two replicas cannot both
take the last credit; it also keeps the last X-API-CREDITS-REMAINING Zoho sent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from notifier.database.models import Base
from servicekit.database import UTCDateTime


class CaptureCursor(Base):
    __tablename__ = "notifier_capture_cursors"
    __table_args__ = (Index("ix_notifier_capture_cursors_due", "read_at"),)

    subscription_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    # CRM module API name (Leads) or Desk resource (Ticket, Contact).
    module: Mapped[str] = mapped_column(String(100), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    app_type: Mapped[int] = mapped_column(Integer, nullable=False)
    covered_until: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    # When this module is next read back (a sweep, a retry, or at once for a gap).
    read_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    # While a window cannot be read back: why (an error reason), and whether its gap
    # event was written (once per window, not once per attempt).
    failing_reason: Mapped[str | None] = mapped_column(String(40))
    gap_announced: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Why the next read is wanted: sweep, start, gap (a metrics label and a log word).
    cause: Mapped[str] = mapped_column(String(16), nullable=False)


class CreditOrg(Base):
    __tablename__ = "notifier_capture_orgs"

    # "crm:<org id>" or "crm:conn:<user id>" (no org readable), "desk:<org id>".
    org_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    zoho_remaining: Mapped[int | None] = mapped_column(BigInteger)
    zoho_remaining_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CreditSpend(Base):
    __tablename__ = "notifier_capture_credits"
    __table_args__ = (Index("ix_notifier_capture_credits_org", "org_key", "spent_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    org_key: Mapped[str] = mapped_column(String(300), nullable=False)
    spent_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    credits: Mapped[int] = mapped_column(Integer, nullable=False)
