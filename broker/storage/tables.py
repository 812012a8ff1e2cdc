"""The broker's database (BROKER_DATABASE_URL, migrations beside this file) and its
tables. Token columns hold ciphertext only (see sealed_columns.py)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import cast

from sqlalchemy import Index, Integer, String, Table, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from servicekit.database import ServiceDatabase, UTCDateTime

__all__ = ["DATABASE", "PROBE_QUERY", "Base", "RefreshAudit", "UTCDateTime", "ZohoConnection",
           "audit_table", "connections_table"]

DATABASE = ServiceDatabase("BROKER_DATABASE_URL", Path(__file__).with_name("migrations"))
# Read at start: a database the broker cannot use stops it there, not at the first call.
PROBE_QUERY = "SELECT id FROM zoho_connections ORDER BY id LIMIT 1"

STATUS_ACTIVE = "active"
STATUS_REAUTH_REQUIRED = "reauth_required"


class Base(DeclarativeBase):
    pass


class ZohoConnection(Base):
    __tablename__ = "zoho_connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    access_token: Mapped[str | None] = mapped_column(Text)
    refresh_token: Mapped[str] = mapped_column(Text, nullable=False)
    # Which refresh token this is, without being it: ties audit rows and the
    # mint budget to the grant (a short SHA-256 of a high-entropy secret).
    refresh_token_hash: Mapped[str] = mapped_column(String(16), nullable=False)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    api_domain: Mapped[str] = mapped_column(String(255), nullable=False)
    accounts_server: Mapped[str] = mapped_column(String(255), nullable=False)
    scopes: Mapped[str] = mapped_column(Text, nullable=False, default="")
    status: Mapped[str] = mapped_column(String(32), nullable=False, default=STATUS_ACTIVE)
    desk_org_id: Mapped[str | None] = mapped_column(String(64))
    last_refresh_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    refresh_failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Compare-and-swap: every write names the version it read and bumps it.
    # Taking the refresh lease bumps it too, so the version is also the fence.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Zoho's token throttle answered: no refresh is attempted before this.
    throttled_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class RefreshAudit(Base):
    """One row per call to Zoho's token endpoint: never a token, only short hashes."""

    __tablename__ = "zoho_refresh_audit"
    __table_args__ = (
        Index("ix_zoho_refresh_audit_rt_time", "refresh_token_hash", "created_at"),
        Index("ix_zoho_refresh_audit_user_time", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # window | soft_window | min_ttl | rejected | create
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    # success | invalid_code | throttled | unavailable | unknown | bad_response | rejected
    # | lost_lease
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
    latency_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    refresh_token_hash: Mapped[str] = mapped_column(String(16), nullable=False)
    access_token_hash: Mapped[str | None] = mapped_column(String(16))
    replica: Mapped[str] = mapped_column(String(64), nullable=False)
    detail: Mapped[str | None] = mapped_column(String(200))


# The tables as the statements in this package name them (Core, not the ORM).
connections_table = cast(Table, ZohoConnection.__table__)
audit_table = cast(Table, RefreshAudit.__table__)

# Outcomes after which Zoho may have minted a token: they count against the budget.
MINTING_OUTCOMES = ("success", "lost_lease", "unknown")
