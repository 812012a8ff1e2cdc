"""Reading, creating and deleting connection rows, and the database's faults as callers
see them (an outage or a damaged database is UNAVAILABLE).

The rest of the broker's table access has its own file in this package: the token columns'
sealing (sealed_columns.py), the refresh lease (lease.py), audit rows and the mint budget's
count over them (audit.py), key checks and re-encryption (key_maintenance.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime

from sqlalchemy import delete, func, insert, select, update
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

from broker.storage import audit
from broker.storage.records import (
    AuditEntry,
    Connection,
    NewConnection,
    join_scopes,
    just_minted,
    token_hash,
)
from broker.storage.sealed_columns import KeyRing, SealedColumns
from broker.storage.tables import STATUS_ACTIVE, connections_table
from servicekit.database import describe_fault
from servicekit.errors import Unavailable

log = logging.getLogger(__name__)

_conn = connections_table


class ConnectionStore:
    def __init__(self, engine: AsyncEngine, keys: KeyRing) -> None:
        self.engine = engine
        self.keys = keys
        self.sealed = SealedColumns(keys)
        # Called once when the database turns out damaged (the broker reports NOT_SERVING).
        self.on_damage: Callable[[], None] | None = None
        self.damaged = False

    # -- the database --------------------------------------------------------

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        async with self._database_faults(), self.engine.connect() as db:
            yield db

    @contextlib.asynccontextmanager
    async def writing(self) -> AsyncIterator[AsyncConnection]:
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

    # -- reads ---------------------------------------------------------------

    async def get(self, user_id: str, *, with_tokens: bool = True) -> Connection | None:
        async with self.reading() as db:
            row = (await db.execute(select(_conn).where(_conn.c.user_id == user_id))).first()
        return None if row is None else self.sealed.record(row, with_tokens=with_tokens)

    async def get_many(self, user_ids: Sequence[str]) -> dict[str, Connection]:
        """The rows of these users that exist, in one query per 500."""
        found: dict[str, Connection] = {}
        async with self.reading() as db:
            for start in range(0, len(user_ids), 500):
                chunk = list(user_ids[start:start + 500])
                rows = (await db.execute(select(_conn).where(_conn.c.user_id.in_(chunk)))).all()
                for row in rows:
                    found[row.user_id] = self.sealed.record(row, with_tokens=True)
        return found

    async def list_after(self, after_user_id: str, limit: int) -> list[Connection]:
        query = select(_conn).order_by(_conn.c.user_id).limit(limit)
        if after_user_id:
            query = query.where(_conn.c.user_id > after_user_id)
        async with self.reading() as db:
            rows = (await db.execute(query)).all()
        return [self.sealed.record(row, with_tokens=False) for row in rows]

    # -- writes --------------------------------------------------------------

    async def put(self, new: NewConnection, now: datetime, entry: AuditEntry) -> Connection:
        """Creates the connection, or replaces it (a reconnect after re-consent)."""
        values = {
            "access_token": self.sealed.seal(new.user_id, "access_token", new.access_token),
            "refresh_token": self.sealed.seal(new.user_id, "refresh_token", new.refresh_token),
            "refresh_token_hash": token_hash(new.refresh_token),
            "token_expires_at": new.token_expires_at,
            "api_domain": new.api_domain,
            "accounts_server": new.accounts_server,
            "scopes": join_scopes(new.scopes),
            "status": STATUS_ACTIVE,
            "desk_org_id": new.desk_org_id or None,
            **just_minted(now),
        }
        for _ in range(2):
            try:
                async with self.writing() as db:
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
                    await audit.write(db, entry, now)
                break
            except IntegrityError:
                continue  # a concurrent create inserted first: replace it instead
        stored = await self.get(new.user_id)
        assert stored is not None
        return stored

    async def delete(self, user_id: str) -> bool:
        async with self.writing() as db:
            result = await db.execute(delete(_conn).where(_conn.c.user_id == user_id))
        return bool(result.rowcount)

    async def count(self) -> int:
        async with self.reading() as db:
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
