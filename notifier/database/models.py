"""The notifier's tables. No verification secret is stored in plaintext: a SHA-256 of it
(the ingress verifies against that), and for CRM, whose channel token must be sent to
Zoho again at renewal, the token sealed with NOTIFIER_ENCRYPTION_KEY."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from servicekit.database import UTCDateTime

# SQLite only auto-increments an INTEGER PRIMARY KEY.
CursorType = BigInteger().with_variant(Integer(), "sqlite")

# pending: written before Zoho is asked (Desk checks the URL during the create), so the
# ingress already knows it; deleted: kept so a Desk delivery to it is answered 410.
STATUS_PENDING = "pending"
STATUS_ACTIVE = "active"
STATUS_REAUTH_REQUIRED = "reauth_required"
STATUS_FAILING = "failing"
STATUS_DELETED = "deleted"


class Base(DeclarativeBase):
    pass


class SubscriptionRow(Base):
    __tablename__ = "notifier_subscriptions"
    __table_args__ = (
        Index("ix_notifier_subscriptions_user", "user_id", "id"),
        Index("ix_notifier_subscriptions_zoho", "app_type", "zoho_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    app_type: Mapped[str] = mapped_column(String(8), nullable=False)  # crm | desk
    events: Mapped[str] = mapped_column(Text, nullable=False)  # JSON list
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    # The CRM channel_id or the Desk webhook id.
    zoho_id: Mapped[str | None] = mapped_column(String(64))
    secret_digest: Mapped[str] = mapped_column(String(64), nullable=False)
    secret_sealed: Mapped[str | None] = mapped_column(Text)
    desk_org_id: Mapped[str | None] = mapped_column(String(32))
    # Where this webhook's X-ZDesk-JWT keys are: its Desk host's /.well-known/jwks.json.
    jwks_url: Mapped[str | None] = mapped_column(String(500))
    notify_on_related_action: Mapped[bool] = mapped_column(Boolean, nullable=False)
    return_affected_field_values: Mapped[bool] = mapped_column(Boolean, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_renewed_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_event_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Change capture's watermark (notifier/capture/): the least of its modules'. Null
    # until the first read-back: then it is the creation time.
    covered_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EventRow(Base):
    """One change to one record, as the NotificationEvent it is streamed as (serialized,
    without its cursor), with the columns WatchNotifications filters on."""

    __tablename__ = "notifier_events"
    __table_args__ = (
        Index("ix_notifier_events_user_cursor", "user_id", "cursor"),
        Index("ix_notifier_events_received", "received_at"),
        Index("ix_notifier_events_record", "subscription_id", "record_id"),
        {"sqlite_autoincrement": True},
    )

    # Assigned and committed in order (see events/log.py): the resume position.
    cursor: Mapped[int] = mapped_column(CursorType, primary_key=True, autoincrement=True)
    # Zoho sends no event id: a digest of what identifies the change (ingress/callbacks.py).
    dedupe_key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    subscription_id: Mapped[str] = mapped_column(String(40), nullable=False)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    app_type: Mapped[int] = mapped_column(Integer, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    event: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    # What change capture matches a read-back against (notifier/capture/dedupe.py): one
    # change of one record is one event, from a callback or read back, whichever came
    # first. Null on gap events. change_time: Zoho's time of the change (a callback's
    # server_time or the record's modified time; a recovered event's Modified_Time).
    record_id: Mapped[str | None] = mapped_column(String(64))
    change_kind: Mapped[str | None] = mapped_column(String(1))  # events/dedupe.py kind_of
    change_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    origin: Mapped[int | None] = mapped_column(Integer)


class EventLogState(Base):
    """One row: every cursor at or below `pruned_through` has been pruned, so resuming
    from one of them could miss events (CURSOR_EXPIRED)."""

    __tablename__ = "notifier_event_log_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pruned_through: Mapped[int] = mapped_column(BigInteger, nullable=False)
