"""All reads and writes of the broker's tables.

Tokens are encrypted here and nowhere else, with the row's user_id and the
column as associated data. Writes that follow a read are compare-and-swap on
`version`; the refresh lease is taken with the same CAS, so the version a
refresher holds is its fencing token: a refresher whose lease lapsed and was
taken over cannot overwrite the newer token.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, or_, select, update
from sqlalchemy.exc import (
    DatabaseError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from broker.crypto import KeyRing
from broker.db import describe_fault
from broker.models import (
    MINTING_OUTCOMES,
    STATUS_ACTIVE,
    STATUS_REAUTH_REQUIRED,
    RefreshAudit,
    ZohoConnection,
)
from servicekit.errors import DecryptError, Unavailable

log = logging.getLogger(__name__)

_conn = cast(Table, ZohoConnection.__table__)
_audit = cast(Table, RefreshAudit.__table__)


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


def _join_scopes(scopes: Sequence[str]) -> str:
    return " ".join(dict.fromkeys(s for s in scopes if s))


class ConnectionStore:
    def __init__(self, engine: AsyncEngine, keys: KeyRing) -> None:
        self.engine = engine
        self.keys = keys
        # Called once when the database turns out damaged (the broker reports NOT_SERVING).
        self.on_damage: Callable[[], None] | None = None
        self.damaged = False

    # -- the database --------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        async with self._database_faults(), self.engine.connect() as db:
            yield db

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        async with self._database_faults(), self.engine.begin() as db:
            yield db

    @contextlib.asynccontextmanager
    async def _database_faults(self) -> AsyncIterator[None]:
        """An outage is UNAVAILABLE (_database_down_is_unavailable); so is a damaged
        database (a corrupted page or index that passed the start checks), which also
        is logged once, with its cause, and reported through `on_damage`."""
        try:
            async with _database_down_is_unavailable():
                yield
        except DBAPIError as exc:
            if not _is_damage(exc):
                raise
            if not self.damaged:
                self.damaged = True
                log.error("the broker's database %s; every call that needs it answers "
                          "UNAVAILABLE and health is NOT_SERVING until an operator restores "
                          "it (PRAGMA integrity_check / REINDEX, or a backup)",
                          describe_fault(exc))
                if self.on_damage is not None:
                    self.on_damage()
            raise Unavailable(
                "the broker's database is damaged; an operator must repair it",
                metadata={"dependency": "database", "error": "DatabaseDamaged"},
            ) from None

    # -- encryption ----------------------------------------------------------

    def _seal(self, user_id: str, column: str, value: str) -> str:
        return self.keys.encrypt(value, context=_bound_to(user_id, column))

    def _open(self, user_id: str, column: str, value: str | None) -> str:
        if not value:
            return ""
        return self.keys.decrypt(value, context=_bound_to(user_id, column))

    def _record(self, row: Any, *, with_tokens: bool) -> Connection:
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
            access_token=self._open(row.user_id, "access_token", row.access_token)
            if with_tokens else "",
            refresh_token=self._open(row.user_id, "refresh_token", row.refresh_token)
            if with_tokens else "",
        )

    # -- reads ---------------------------------------------------------------

    async def get(self, user_id: str, *, with_tokens: bool = True) -> Connection | None:
        async with self._reading() as db:
            row = (await db.execute(select(_conn).where(_conn.c.user_id == user_id))).first()
        return None if row is None else self._record(row, with_tokens=with_tokens)

    async def get_many(self, user_ids: Sequence[str]) -> dict[str, Connection]:
        """The rows of these users that exist, in one query per 500."""
        found: dict[str, Connection] = {}
        async with self._reading() as db:
            for start in range(0, len(user_ids), 500):
                chunk = list(user_ids[start:start + 500])
                rows = (await db.execute(select(_conn).where(_conn.c.user_id.in_(chunk)))).all()
                for row in rows:
                    found[row.user_id] = self._record(row, with_tokens=True)
        return found

    async def list_after(self, after_user_id: str, limit: int) -> list[Connection]:
        query = select(_conn).order_by(_conn.c.user_id).limit(limit)
        if after_user_id:
            query = query.where(_conn.c.user_id > after_user_id)
        async with self._reading() as db:
            rows = (await db.execute(query)).all()
        return [self._record(row, with_tokens=False) for row in rows]

    async def mints_since(self, refresh_token_hash: str, since: datetime) -> list[datetime]:
        """When Zoho may have minted tokens for this refresh token since `since`, oldest first."""
        query = (
            select(_audit.c.created_at)
            .where(
                _audit.c.refresh_token_hash == refresh_token_hash,
                _audit.c.created_at > since,
                _audit.c.outcome.in_(MINTING_OUTCOMES),
            )
            .order_by(_audit.c.created_at)
        )
        async with self._reading() as db:
            return [value for (value,) in (await db.execute(query)).all()]

    # -- writes --------------------------------------------------------------

    async def put(self, new: NewConnection, now: datetime, audit: AuditEntry) -> Connection:
        """Creates the connection, or replaces it (a reconnect after re-consent)."""
        values = {
            "access_token": self._seal(new.user_id, "access_token", new.access_token),
            "refresh_token": self._seal(new.user_id, "refresh_token", new.refresh_token),
            "refresh_token_hash": token_hash(new.refresh_token),
            "token_expires_at": new.token_expires_at,
            "api_domain": new.api_domain,
            "accounts_server": new.accounts_server,
            "scopes": _join_scopes(new.scopes),
            "status": STATUS_ACTIVE,
            "desk_org_id": new.desk_org_id or None,
            **_just_minted(now),
        }
        for _ in range(2):
            try:
                async with self._writing() as db:
                    replaced = await db.execute(
                        update(_conn)
                        .where(_conn.c.user_id == new.user_id)
                        .values(**values, version=_conn.c.version + 1)
                    )
                    if replaced.rowcount == 0:
                        await db.execute(
                            insert(_conn).values(
                                user_id=new.user_id, created_at=now, version=1, **values
                            )
                        )
                    await self._audit(db, audit, now)
                break
            except IntegrityError:
                continue  # a concurrent create inserted first: replace it instead
        stored = await self.get(new.user_id)
        assert stored is not None
        return stored

    async def delete(self, user_id: str) -> bool:
        async with self._writing() as db:
            result = await db.execute(delete(_conn).where(_conn.c.user_id == user_id))
        return bool(result.rowcount)

    async def try_lease(
        self, user_id: str, read_version: int, owner: str, now: datetime, ttl: float
    ) -> int | None:
        """Takes the refresh lease if nobody changed the row since `read_version`
        and no live lease exists. Returns the fence (the new version) or None."""
        async with self._writing() as db:
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
        user_id: str,
        fence: int,
        owner: str,
        *,
        access_token: str,
        expires_at: datetime,
        api_domain: str,
        refresh_token: str | None,
        scopes: Sequence[str] | None,
        now: datetime,
        audit: AuditEntry,
    ) -> bool:
        """Writes a refreshed token and releases the lease, in one transaction with
        its audit row, only if this refresher still holds the fence."""
        values: dict[str, Any] = {
            "access_token": self._seal(user_id, "access_token", access_token),
            "token_expires_at": expires_at,
            "api_domain": api_domain,
            **_just_minted(now),
            "version": fence + 1,
        }
        if refresh_token:  # Zoho rotated it
            values["refresh_token"] = self._seal(user_id, "refresh_token", refresh_token)
            values["refresh_token_hash"] = token_hash(refresh_token)
        if scopes:
            values["scopes"] = _join_scopes(scopes)
        async with self._writing() as db:
            result = await db.execute(
                update(_conn)
                .where(_conn.c.user_id == user_id, _conn.c.version == fence,
                       _conn.c.lease_owner == owner)
                .values(**values)
            )
            won = result.rowcount == 1
            await self._audit(db, audit if won else _lost(audit), now)
        return won

    async def release_with_error(
        self,
        user_id: str,
        fence: int,
        owner: str,
        *,
        error: str,
        now: datetime,
        audit: AuditEntry,
        reauth: bool = False,
        throttled_until: datetime | None = None,
    ) -> None:
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
        async with self._writing() as db:
            await db.execute(
                update(_conn)
                .where(_conn.c.user_id == user_id, _conn.c.version == fence,
                       _conn.c.lease_owner == owner)
                .values(**values)
            )
            await self._audit(db, audit, now)

    async def record_audit(self, audit: AuditEntry, now: datetime) -> None:
        async with self._writing() as db:
            await self._audit(db, audit, now)

    async def _audit(self, db: AsyncConnection, audit: AuditEntry, now: datetime) -> None:
        await db.execute(
            insert(_audit).values(
                user_id=audit.user_id,
                created_at=now,
                reason=audit.reason,
                outcome=audit.outcome,
                latency_ms=audit.latency_ms,
                refresh_token_hash=audit.refresh_token_hash,
                access_token_hash=audit.access_token_hash,
                replica=audit.replica,
                detail=(audit.detail or "")[:200] or None,
            )
        )

    # -- key maintenance (the procedure: broker/key_maintenance.py) -------------

    async def stray_key_id(self) -> str | None:
        """The key id of a stored token under no key of the ring, if there is one."""
        async with self._reading() as db:
            for column in (_conn.c.refresh_token, _conn.c.access_token):
                known = [column.startswith(f"v1:{k}:", autoescape=True)
                         for k in self.keys.key_ids]
                stray = (await db.execute(
                    select(_conn.c.user_id, column.label("value"))
                    .where(column.is_not(None), column != "", ~or_(*known)).limit(1)
                )).first()
                if stray is not None:
                    return self.keys.key_id_of(stray.value)
        return None

    async def key_opens(self, key_id: str) -> bool | None:
        """Whether the ring's key `key_id` opens a refresh token stored under that id
        (None: no token is stored under it)."""
        async with self._reading() as db:
            sample = (await db.execute(
                select(_conn.c.user_id, _conn.c.refresh_token)
                .where(_conn.c.refresh_token.startswith(f"v1:{key_id}:", autoescape=True))
                .limit(1)
            )).first()
        if sample is None:
            return None
        try:
            self._open(sample.user_id, "refresh_token", sample.refresh_token)
        except DecryptError:
            return False
        return True

    async def reseal(self, user_id: str) -> str:
        """Re-seals one row's tokens under the ring's first key, CAS on its version:
        "current" (already under it, or gone), "rewritten", or "changed" (written by
        someone else meanwhile: visit it again)."""
        async with self._reading() as db:
            row = (await db.execute(select(_conn).where(_conn.c.user_id == user_id))).first()
        if row is None or all(
            not value or self.keys.key_id_of(value) == self.keys.primary_id
            for value in (row.access_token, row.refresh_token)
        ):
            return "current"
        record = self._record(row, with_tokens=True)
        sealed_access = (
            self._seal(user_id, "access_token", record.access_token)
            if record.access_token else None
        )
        async with self._writing() as db:
            result = await db.execute(
                update(_conn)
                .where(_conn.c.user_id == user_id, _conn.c.version == row.version)
                .values(
                    access_token=sealed_access,
                    refresh_token=self._seal(user_id, "refresh_token", record.refresh_token),
                    version=row.version + 1,
                )
            )
        return "rewritten" if result.rowcount == 1 else "changed"

    async def count(self) -> int:
        async with self._reading() as db:
            return int((await db.execute(select(func.count()).select_from(_conn))).scalar_one())


@contextlib.asynccontextmanager
async def _database_down_is_unavailable() -> AsyncIterator[None]:
    """The one place a database outage (PostgreSQL restarting, unreachable, pool
    exhausted) becomes UNAVAILABLE for callers, instead of INTERNAL. A constraint
    violation is not an outage and passes through."""
    try:
        yield
    except (OperationalError, InterfaceError, PoolTimeout) as exc:
        raise Unavailable(
            "the broker's database is unavailable; retry shortly",
            metadata={"dependency": "database", "error": type(exc.orig or exc).__name__
                      if isinstance(exc, DBAPIError) else type(exc).__name__},
        ) from None
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise Unavailable("the broker's database connection was lost; retry shortly",
                              metadata={"dependency": "database"}) from None
        raise


def _is_damage(exc: DBAPIError) -> bool:
    """SQLite's "database disk image is malformed" is a bare DatabaseError; PostgreSQL's
    data_corrupted and index_corrupted (XX001, XX002) are InternalErrors."""
    return type(exc) is DatabaseError or isinstance(exc, InternalError)


def _bound_to(user_id: str, column: str) -> str:
    """The associated data of a token ciphertext: it opens only in its own row and column.
    Changing this string makes every stored token unreadable."""
    return f"zoho_connections:{column}:{user_id}"


def _just_minted(now: datetime) -> dict[str, Any]:
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


def _lost(audit: AuditEntry) -> AuditEntry:
    return AuditEntry(**{**audit.__dict__, "outcome": "lost_lease",
                         "detail": "lease lapsed and was taken over; token discarded"})
