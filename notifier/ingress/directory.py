"""The ingress's view of subscriptions: what it needs to verify a delivery, read from
the database and kept for a second, so a burst of deliveries costs one lookup.

A delete in this process is seen at once (forget); one in another replica within the
cache time. Unknown ids are cached too, so a flood of forged ids costs one query per
id and second, not one per delivery. Lookups of one id share one query: when an entry
expires under load, the deliveries in flight would otherwise each open a connection."""

from __future__ import annotations

from dataclasses import dataclass

from cachetools import TTLCache
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.database.models import STATUS_DELETED, SubscriptionRow
from servicekit.deadline import Deadline
from servicekit.singleflight import SingleFlight

CACHE_SECONDS = 1.0
MAX_CACHED = 50_000
_UNKNOWN = object()  # not cached (None is cached: no such subscription)


@dataclass(frozen=True)
class KnownSubscription:
    id: str
    user_id: str
    app_type: str
    zoho_id: str
    secret_digest: str
    deleted: bool
    desk_org_id: str
    jwks_url: str


class SubscriptionDirectory:
    def __init__(self, engine: AsyncEngine, *, cache_seconds: float = CACHE_SECONDS) -> None:
        self._engine = engine
        # Past the cap the least recently used entry goes, not every entry at once.
        self._cache: TTLCache[str, KnownSubscription | None] = TTLCache(
            maxsize=MAX_CACHED, ttl=cache_seconds
        )
        self._reading: SingleFlight[KnownSubscription | None] = SingleFlight(
            log_failures=False
        )

    def forget(self, subscription_id: str) -> None:
        self._cache.pop(subscription_id, None)

    async def lookup(self, subscription_id: str) -> KnownSubscription | None:
        cached = self._cache.get(subscription_id, _UNKNOWN)
        if cached is not _UNKNOWN:
            return cached  # type: ignore[return-value]
        # Shielded: one caller going away must not cancel the others' lookup.
        return await self._reading.do(
            subscription_id, lambda: self._read(subscription_id), Deadline.unbounded()
        )

    async def _read(self, subscription_id: str) -> KnownSubscription | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(SubscriptionRow).where(SubscriptionRow.id == subscription_id)
                )
            ).first()
        known = None
        if row is not None:
            known = KnownSubscription(
                id=row.id,
                user_id=row.user_id,
                app_type=row.app_type,
                zoho_id=row.zoho_id or "",
                secret_digest=row.secret_digest,
                deleted=row.status == STATUS_DELETED,
                desk_org_id=row.desk_org_id or "",
                jwks_url=row.jwks_url or "",
            )
        self._cache[subscription_id] = known
        return known
