"""The connection record the broker's code passes around, built from a table row, and the
inputs of a create and of an audit row. Tokens arrive here already decrypted
(sealed_columns.py opens them)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broker.storage.tables import STATUS_ACTIVE


def token_hash(token: str) -> str:
    """A short, stable name for a token that reveals nothing usable about it."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Connection:
    user_id: str
    refresh_token_hash: str
    token_expires_at: datetime | None
    api_domain: str
    accounts_server: str
    scopes: tuple[str, ...]
    status: str
    desk_org_id: str
    last_refresh_time: datetime | None
    last_error: str
    refresh_failures: int
    version: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    throttled_until: datetime | None
    created_at: datetime
    updated_at: datetime
    # Decrypted only on reads that need them; never printed.
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)

    @property
    def active(self) -> bool:
        return self.status == STATUS_ACTIVE

    @functools.cached_property  # a record is shared by every GetToken of its cache lifetime
    def grant_id(self) -> str:
        """Names the grant: it changes with the refresh token, so a reconnect (a new
        consent, maybe of another Zoho account) changes it. A hash of the hash, so it
        is not the refresh_token_hash found in the audit table."""
        return hashlib.sha256(f"grant:{self.refresh_token_hash}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AuditEntry:
    user_id: str
    reason: str
    outcome: str
    latency_ms: int
    refresh_token_hash: str
    replica: str
    access_token_hash: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class NewConnection:
    user_id: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    token_expires_at: datetime
    api_domain: str
    accounts_server: str
    scopes: Sequence[str]
    desk_org_id: str


def from_row(row: Any, *, access_token: str = "", refresh_token: str = "") -> Connection:
    """The record of a zoho_connections row, with the tokens given already opened."""
    return Connection(
        user_id=row.user_id,
        refresh_token_hash=row.refresh_token_hash,
        token_expires_at=row.token_expires_at,
        api_domain=row.api_domain,
        accounts_server=row.accounts_server,
        scopes=tuple(row.scopes.split()) if row.scopes else (),
        status=row.status,
        desk_org_id=row.desk_org_id or "",
        last_refresh_time=row.last_refresh_time,
        last_error=row.last_error or "",
        refresh_failures=row.refresh_failures,
        version=row.version,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        throttled_until=row.throttled_until,
        created_at=row.created_at,
        updated_at=row.updated_at,
        access_token=access_token,
        refresh_token=refresh_token,
    )


def join_scopes(scopes: Sequence[str]) -> str:
    return " ".join(dict.fromkeys(s for s in scopes if s))


def just_minted(now: datetime) -> dict[str, Any]:
    """A row's bookkeeping after Zoho minted its token: no error, no lease, no throttle."""
    return {
        "last_refresh_time": now,
        "last_error": None,
        "refresh_failures": 0,
        "lease_owner": None,
        "lease_expires_at": None,
        "throttled_until": None,
        "updated_at": now,
    }
