"""The ingress's view of subscriptions: what it needs to verify a delivery, read from
the database and kept for a second, so a burst of deliveries costs one lookup.

A delete in this process is seen at once (forget); one in another replica within the
cache time. Unknown ids are cached too, so a flood of forged ids costs one query per
id and second, not one per delivery. Lookups of one id share one query: when an entry
expires under load, the deliveries in flight would otherwise each open a connection."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from cachetools import TTLCache
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.app_types import AppType
from notifier.database.models import STATUS_DELETED, STATUS_PENDING, SubscriptionRow
from notifier.ingress.outages import DATABASE_FAULTS, DatabaseDown
from servicekit.deadline import Deadline
from servicekit.singleflight import SingleFlight

CACHE_SECONDS = 1.0
MAX_CACHED = 50_000
# A lookup the database has not answered by then is refused (503), not left hanging:
# the sender (and its connection) would otherwise wait as long as the outage lasts.
LOOKUP_SECONDS = 5.0
_UNKNOWN = object()  # not cached (None is cached: no such subscription)


@dataclass(frozen=True)
class KnownSubscription:
    id: str
    user_id: str
    app_type: AppType
    zoho_id: str
    secret_digest: str
    deleted: bool
    desk_org_id: str
    jwks_url: str
    # Half-made by a CreateSubscription that has not finished (or crashed): its owner
    # cannot list it, so nothing is delivered for it (the keeper resolves it).
    pending: bool = False
    desk_jwt_required: bool = False


class SubscriptionDirectory:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        cache_seconds: float = CACHE_SECONDS,
        lookup_seconds: float = LOOKUP_SECONDS,
    ) -> None:
        self._engine = engine
        self._lookup_seconds = lookup_seconds
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
        """Raises DatabaseDown when the database fails or does not answer in time."""
        cached = self._cache.get(subscription_id, _UNKNOWN)
        if cached is not _UNKNOWN:
            return cached  # type: ignore[return-value]
        # Shielded: one caller going away (or timing out) must not cancel the others' lookup.
        try:
            return await self._reading.do(
                subscription_id, lambda: self._read(subscription_id),
                Deadline(self._lookup_seconds),
            )
        except TimeoutError:
            raise DatabaseDown(f"no answer within {self._lookup_seconds:g} s") from None

    async def require_desk_jwt(self, subscription_id: str) -> None:
        """From now on, a delivery to this webhook without a valid X-ZDesk-JWT is refused."""
        try:
            async with asyncio.timeout(self._lookup_seconds), self._engine.begin() as conn:
                await conn.execute(
                    update(SubscriptionRow)
                    .where(SubscriptionRow.id == subscription_id)
                    .values(desk_jwt_required=True)
                )
        except TimeoutError:
            raise DatabaseDown(f"no answer within {self._lookup_seconds:g} s") from None
        except DATABASE_FAULTS as failed:
            raise DatabaseDown(type(failed).__name__) from failed
        self.forget(subscription_id)

    async def _read(self, subscription_id: str) -> KnownSubscription | None:
        try:
            async with self._engine.connect() as conn:
                row = (
                    await conn.execute(
                        select(SubscriptionRow).where(SubscriptionRow.id == subscription_id)
                    )
                ).first()
        except DATABASE_FAULTS as failed:
            # Not cached: the next delivery asks again, so recovery is seen at once.
            raise DatabaseDown(type(failed).__name__) from failed
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
                pending=row.status == STATUS_PENDING,
                desk_jwt_required=bool(row.desk_jwt_required),
            )
        self._cache[subscription_id] = known
        return known
