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
    # The contract's AppType number, as in every notifier table (notifier/app_types.py).
    app_type: Mapped[int] = mapped_column(Integer, nullable=False)
    events: Mapped[str] = mapped_column(Text, nullable=False)  # JSON list
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    # The CRM channel_id or the Desk webhook id.
    zoho_id: Mapped[str | None] = mapped_column(String(64))
    secret_digest: Mapped[str] = mapped_column(String(64), nullable=False)
    secret_sealed: Mapped[str | None] = mapped_column(Text)
    desk_org_id: Mapped[str | None] = mapped_column(String(32))
    # Where this webhook's X-ZDesk-JWT keys are: its Desk host's /.well-known/jwks.json.
    jwks_url: Mapped[str | None] = mapped_column(String(500))
    # Once this webhook's Desk host has sent an X-ZDesk-JWT, every later delivery must
    # carry one: the path secret alone (shown to no caller, but once in Desk's hands)
    # no longer suffices (n0003_outages).
    desk_jwt_required: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
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


class OutageRow(Base):
    """A window in which one replica's ingress refused deliveries (503) because the
    database failed: written once the database answers again, then announced to
    watchers as a gap on each subscription (`announced_at` set once they are)."""

    __tablename__ = "notifier_outages"

    id: Mapped[int] = mapped_column(CursorType, primary_key=True, autoincrement=True)
    replica: Mapped[str] = mapped_column(String(64), nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    refused: Mapped[int] = mapped_column(Integer, nullable=False)
    announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EventLogState(Base):
    """One row: every cursor at or below `pruned_through` has been pruned, so resuming
    from one of them could miss events (CURSOR_EXPIRED)."""

    __tablename__ = "notifier_event_log_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pruned_through: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ConsumerRow(Base):
    """A named position in the event log (notifier/consumers/). Every matching event at
    or below `read_through` has been read into notifier_consumer_deliveries or acked."""

    __tablename__ = "notifier_consumers"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    app_type: Mapped[int] = mapped_column(Integer, nullable=False)
    subscription_id: Mapped[str] = mapped_column(String(40), nullable=False)
    ack_deadline_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    read_through: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # NULL until the first ack after creation or the last seek.
    acked_until: Mapped[int | None] = mapped_column(BigInteger)
    # Bumped by every seek: acks of deliveries made before it are not applied after it.
    generation: Mapped[int] = mapped_column(Integer, nullable=False)
    expired_count: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class ConsumerDeliveryRow(Base):
    """One event a consumer has read and not had acknowledged: leased to a Pull (`holder`
    until `deadline`) or waiting (deadline NULL: never sent, nacked, or behind an earlier
    event of its record). An ack deletes the row."""

    __tablename__ = "notifier_consumer_deliveries"
    __table_args__ = (
        Index("ix_notifier_consumer_deliveries_record", "consumer_id", "record_key", "cursor"),
    )

    consumer_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    cursor: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, nullable=False)
    # A digest of (user, app, module, record_id), or of the subscription for an event
    # without a record: one outstanding event per key at a time.
    record_key: Mapped[str] = mapped_column(String(32), nullable=False)
    # The record's lowest row: the only one of it that may be leased.
    is_head: Mapped[bool] = mapped_column(Boolean, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    holder: Mapped[str | None] = mapped_column(String(64))
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime)
