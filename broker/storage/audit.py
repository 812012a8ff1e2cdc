"""The audit table: one row per call to Zoho's token endpoint, never a token, only hashes.
The mint budget (broker/core/mint_budget.py) is counted from it, by mint_times."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.storage.records import AuditEntry
from broker.storage.tables import MINTING_OUTCOMES, audit_table

if TYPE_CHECKING:
    from broker.storage.connection_store import ConnectionStore


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


async def mint_times(
    store: ConnectionStore, refresh_token_hash: str, since: datetime
) -> list[datetime]:
    """When Zoho may have minted tokens for this refresh token since `since`, oldest first
    (the rows whose outcome is one of MINTING_OUTCOMES)."""
    query = (
        select(audit_table.c.created_at)
        .where(
            audit_table.c.refresh_token_hash == refresh_token_hash,
            audit_table.c.created_at > since,
            audit_table.c.outcome.in_(MINTING_OUTCOMES),
        )
        .order_by(audit_table.c.created_at)
    )
    async with store.reading() as db:
        return [value for (value,) in (await db.execute(query)).all()]


def lost(entry: AuditEntry) -> AuditEntry:
    """The entry of a refresh whose token was discarded: Zoho minted, the fence was gone."""
    return AuditEntry(**{**entry.__dict__, "outcome": "lost_lease",
                         "detail": "lease lapsed and was taken over; token discarded"})
