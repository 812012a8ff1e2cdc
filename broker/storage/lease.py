"""The refresh lease: one refresher per connection across replicas, fenced by `version`.

Taking the lease is a compare-and-swap on the version the refresher read, and bumps it;
that new version is the refresher's fence. Its writes name the fence and the owner, so a
refresher whose lease lapsed and was taken over cannot overwrite the newer token.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update

from broker.storage import audit
from broker.storage.connection_store import ConnectionStore
from broker.storage.records import AuditEntry, Connection, join_scopes, just_minted, token_hash
from broker.storage.tables import STATUS_REAUTH_REQUIRED, connections_table

_conn = connections_table


class RefreshLease:
    def __init__(self, store: ConnectionStore) -> None:
        self.store = store

    async def take(
        self, user_id: str, read_version: int, owner: str, now: datetime, ttl: float
    ) -> int | None:
        """Takes the refresh lease if nobody changed the row since `read_version`
        and no live lease exists. Returns the fence (the new version) or None."""
        async with self.store.writing() as db:
            result = await db.execute(
                update(_conn)
                .where(
                    _conn.c.user_id == user_id,
                    _conn.c.version == read_version,
                    or_(_conn.c.lease_owner.is_(None), _conn.c.lease_expires_at < now),
                )
                .values(
                    lease_owner=owner,
                    lease_expires_at=now + timedelta(seconds=ttl),
                    version=read_version + 1,
                )
            )
        return read_version + 1 if result.rowcount == 1 else None

    async def save_refresh(
        self,
        read: Connection,
        fence: int,
        owner: str,
        *,
        access_token: str,
        expires_at: datetime,
        api_domain: str,
        refresh_token: str | None,
        scopes: Sequence[str] | None,
        now: datetime,
        entry: AuditEntry,
    ) -> Connection | None:
        """Writes a refreshed token and releases the lease, in one transaction with
        its audit row, only if this refresher still holds the fence. Returns the row as
        written, or None (the fence was lost and the token discarded).

        `read` is the record the fence was taken on: every write bumps the version, so
        while the fence holds the row is `read` plus what this write and the lease set."""
        user_id, sealed = read.user_id, self.store.sealed
        values: dict[str, Any] = {
            "access_token": sealed.seal(user_id, "access_token", access_token),
            "token_expires_at": expires_at,
            "api_domain": api_domain,
            **just_minted(now),
            "version": fence + 1,
        }
        if refresh_token:  # Zoho rotated it
            values["refresh_token"] = sealed.seal(user_id, "refresh_token", refresh_token)
            values["refresh_token_hash"] = token_hash(refresh_token)
        if scopes:
            values["scopes"] = join_scopes(scopes)
        async with self.store.writing() as db:
            result = await db.execute(
                update(_conn)
                .where(_conn.c.user_id == user_id, _conn.c.version == fence,
                       _conn.c.lease_owner == owner)
                .values(**values)
            )
            won = result.rowcount == 1
            await audit.write(db, entry if won else audit.lost(entry), now)
        if not won:
            return None
        # The row as written: `read` with the written columns (tokens in plain text; the
        # same two conversions as from_row).
        written = {k: v for k, v in values.items() if k not in ("access_token", "refresh_token")}
        written["last_error"] = written["last_error"] or ""
        written["scopes"] = tuple(written["scopes"].split()) if scopes else read.scopes
        return dataclasses.replace(
            read, **written, access_token=access_token,
            refresh_token=refresh_token or read.refresh_token,
        )

    async def release_with_error(
        self,
        user_id: str,
        fence: int,
        owner: str,
        *,
        error: str,
        now: datetime,
        entry: AuditEntry,
        reauth: bool = False,
        throttled_until: datetime | None = None,
    ) -> None:
        """Releases the lease with the error recorded on the row, if the fence still holds."""
        values: dict[str, Any] = {
            "last_error": error[:500],
            "refresh_failures": _conn.c.refresh_failures + 1,
            "lease_owner": None,
            "lease_expires_at": None,
            "updated_at": now,
            "version": fence + 1,
        }
        if reauth:
            values["status"] = STATUS_REAUTH_REQUIRED
        if throttled_until is not None:
            values["throttled_until"] = throttled_until
        async with self.store.writing() as db:
            await db.execute(
                update(_conn)
                .where(_conn.c.user_id == user_id, _conn.c.version == fence,
                       _conn.c.lease_owner == owner)
                .values(**values)
            )
            await audit.write(db, entry, now)
