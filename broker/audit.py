"""The audit table: one row per call to Zoho's token endpoint, never a token, only hashes.
The mint budget is counted from it (mint_budget.py)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, cast

from sqlalchemy import Table, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.models import RefreshAudit
from broker.records import AuditEntry

if TYPE_CHECKING:
    from broker.store import ConnectionStore

audit_table = cast(Table, RefreshAudit.__table__)


async def write(db: AsyncConnection, entry: AuditEntry, now: datetime) -> None:
    """Adds the row inside the caller's transaction, so it commits with what it records."""
    await db.execute(
        insert(audit_table).values(
            user_id=entry.user_id,
            created_at=now,
            reason=entry.reason,
            outcome=entry.outcome,
            latency_ms=entry.latency_ms,
            refresh_token_hash=entry.refresh_token_hash,
            access_token_hash=entry.access_token_hash,
            replica=entry.replica,
            detail=(entry.detail or "")[:200] or None,
        )
    )


async def record(store: ConnectionStore, entry: AuditEntry, now: datetime) -> None:
    """Adds the row in a transaction of its own (a call whose outcome changed no row)."""
    async with store.writing() as db:
        await write(db, entry, now)


def lost(entry: AuditEntry) -> AuditEntry:
    """The entry of a refresh whose token was discarded: Zoho minted, the fence was gone."""
    return AuditEntry(**{**entry.__dict__, "outcome": "lost_lease",
                         "detail": "lease lapsed and was taken over; token discarded"})
