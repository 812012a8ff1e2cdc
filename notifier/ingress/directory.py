"""The ingress's view of subscriptions: what it needs to verify a delivery, read from
the database and kept for a second, so a burst of deliveries costs one lookup.

A delete in this process is seen at once (forget); one in another replica within the
cache time. Unknown ids are cached too, so a flood of forged ids costs one query per
id and second, not one per delivery. Lookups of one id share one query: when an entry
expires under load, the deliveries in flight would otherwise each open a connection."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.database.models import STATUS_DELETED, STATUS_PENDING, SubscriptionRow
from notifier.ingress.outages import DATABASE_FAULTS, DatabaseDown

CACHE_SECONDS = 1.0
MAX_CACHED = 50_000
# A lookup the database has not answered by then is refused (503), not left hanging:
# the sender (and its connection) would otherwise wait as long as the outage lasts.
LOOKUP_SECONDS = 5.0


def secret_digest(secret: str) -> str:
    # The secrets are 256 random bits: a plain digest cannot be reversed or guessed.
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(given: object, digest: str) -> bool:
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(secret_digest(given), digest)


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
        self._ttl = cache_seconds
        self._lookup_seconds = lookup_seconds
        self._cache: dict[str, tuple[KnownSubscription | None, float]] = {}
        self._reading: dict[str, asyncio.Future[KnownSubscription | None]] = {}

    def forget(self, subscription_id: str) -> None:
        self._cache.pop(subscription_id, None)

    async def lookup(self, subscription_id: str) -> KnownSubscription | None:
        """Raises DatabaseDown when the database fails or does not answer in time."""
        cached = self._cache.get(subscription_id)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        reading = self._reading.get(subscription_id)
        if reading is None:
            reading = asyncio.ensure_future(self._read(subscription_id))
            self._reading[subscription_id] = reading
            reading.add_done_callback(lambda _: self._reading.pop(subscription_id, None))
        # shield: one caller going away (or timing out) must not cancel the others' lookup.
        try:
            async with asyncio.timeout(self._lookup_seconds):
                return await asyncio.shield(reading)
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
        now = time.monotonic()
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
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[subscription_id] = (known, now + self._ttl)
        return known
