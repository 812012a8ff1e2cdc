"""Refreshing a connection's access token at Zoho: one refresh per connection in this
process (SingleFlight) and across replicas (the fenced lease, broker/storage/lease.py),
within the mint budget (mint_budget.py), saved with its audit row and put in this
process's copy."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from prometheus_client import Counter

from broker.config import BrokerConfig
from broker.core.accounts_errors import audit_outcome, domain_error
from broker.core.connection_cache import ConnectionCache
from broker.core.mint_budget import MintBudget, check_not_throttled
from broker.core.zoho_accounts import AccountsClient, AccountsError, InvalidGrant, Throttled
from broker.storage.connection_store import ConnectionStore
from broker.storage.lease import RefreshLease
from broker.storage.records import AuditEntry, Connection, token_hash
from servicekit.deadline import Deadline
from servicekit.errors import (
    NotConnected,
    OriginNotAllowed,
    ReauthRequired,
    ServiceError,
    ZohoUnavailable,
)
from servicekit.origins import OriginPolicy
from servicekit.singleflight import SingleFlight

log = logging.getLogger(__name__)

REFRESHES = Counter(
    "broker_refreshes_total", "Calls to Zoho's token endpoint", ["reason", "outcome"]
)

# Whether a connection's current token is what the waiting callers need.
GoodEnough = Callable[[Connection], bool]


class Refresher:
    def __init__(
        self,
        store: ConnectionStore,
        cache: ConnectionCache,
        budget: MintBudget,
        accounts: AccountsClient,
        policy: OriginPolicy,
        config: BrokerConfig,
        *,
        replica: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.cache = cache
        self.budget = budget
        self.lease = RefreshLease(store)
        self.accounts = accounts
        self.policy = policy
        self.config = config
        self.replica = replica
        self.clock = clock
        # Concurrent refreshes of one connection share one call to Zoho.
        self._refreshes: SingleFlight[Connection] = SingleFlight()

    async def refresh(
        self, user_id: str, reason: str, good_enough: GoodEnough, deadline: Deadline
    ) -> Connection:
        """Waits for the one refresh of this connection, starting it if needed.

        A refresh already running serves every waiter, whatever its reason: it
        yields the newest token there can be."""
        return await self._refreshes.do(
            user_id, lambda: self._until_good_enough(user_id, reason, good_enough), deadline
        )

    def start(self, user_id: str, reason: str, good_enough: GoodEnough) -> None:
        """Starts a refresh nobody waits for, unless one is running already."""
        if not self._refreshes.running(user_id):
            self._refreshes.start(
                user_id, lambda: self._until_good_enough(user_id, reason, good_enough)
            )

    async def close(self) -> None:
        await self._refreshes.cancel_all()

    async def _until_good_enough(
        self, user_id: str, reason: str, good_enough: GoodEnough
    ) -> Connection:
        """Reads the row until its token is good enough, refreshing it whenever this
        replica can take the lease."""
        # Another replica's lease can have just begun: waiting out one whole lease
        # (and our own turn after it) is the most a refresh can take.
        give_up_at = time.monotonic() + 2 * self.config.lease_seconds
        pause = 0.02
        while True:
            record = await self.store.get(user_id)
            if record is None:
                self.cache.forget(user_id)
                raise NotConnected(user_id)
            self.cache.remember(record)
            if not record.active:
                raise ReauthRequired(record.user_id)
            if good_enough(record):
                return record  # another replica refreshed while we looked
            now = self.clock()
            check_not_throttled(record.throttled_until, now, what="connection")
            await self.budget.check(record.refresh_token_hash, now)
            fence = await self.lease.take(
                user_id, record.version, self.replica, now, self.config.lease_seconds
            )
            if fence is not None:
                # The lease must outlive the Zoho call, so the call's budget is cut to fit.
                deadline = Deadline(self.config.lease_seconds - 1.0)
                refreshed = await self._call_zoho(record, fence, reason, deadline)
                if refreshed is not None:
                    return refreshed
                continue  # our lease lapsed and another replica took over: look again
            # Another replica holds the lease (or just wrote): wait for its result.
            if time.monotonic() + pause > give_up_at:
                raise ZohoUnavailable("another replica's refresh of this connection is stuck")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)

    async def _call_zoho(
        self, record: Connection, fence: int, reason: str, deadline: Deadline
    ) -> Connection | None:
        """Calls Zoho while holding the lease. Returns the stored result, or None
        if the lease was lost before the write (the caller looks again)."""
        started = time.monotonic()
        user_id = record.user_id

        def audit(outcome: str, detail: str | None = None,
                  access_hash: str | None = None) -> AuditEntry:
            REFRESHES.labels(reason, outcome).inc()
            return AuditEntry(
                user_id=user_id, reason=reason, outcome=outcome,
                latency_ms=int((time.monotonic() - started) * 1000),
                refresh_token_hash=record.refresh_token_hash, replica=self.replica,
                access_token_hash=access_hash, detail=detail,
            )

        async def failed(
            outcome: str, error: ServiceError, *, reauth: bool = False,
            throttled_until: datetime | None = None,
        ) -> ServiceError:
            """Releases the lease with the error recorded; returns the error to raise."""
            await self.lease.release_with_error(
                user_id, fence, self.replica, error=error.message, now=self.clock(),
                entry=audit(outcome, error.reason), reauth=reauth,
                throttled_until=throttled_until,
            )
            self.cache.forget(user_id)
            return error

        try:
            grant = await self.accounts.refresh(
                record.accounts_server, record.refresh_token, deadline
            )
            api_domain = self.policy.api_domain(grant.api_domain or record.api_domain)
        except AccountsError as exc:
            raise await failed(
                audit_outcome(exc), domain_error(exc, user_id),
                reauth=isinstance(exc, InvalidGrant),
                throttled_until=self.clock() + timedelta(seconds=exc.retry_after)
                if isinstance(exc, Throttled) else None,
            ) from None
        except OriginNotAllowed:
            raise await failed("bad_response", ZohoUnavailable(
                "Zoho's token answer named an API domain outside the allowed origins",
                endpoint="token",
            )) from None

        now = self.clock()
        fresh = await self.lease.save_refresh(
            record, fence, self.replica,
            access_token=grant.access_token,
            expires_at=now + timedelta(seconds=grant.expires_in),
            api_domain=api_domain,
            refresh_token=grant.refresh_token,
            scopes=grant.scopes or None,
            now=now,
            entry=audit("success", access_hash=token_hash(grant.access_token)),
        )
        if fresh is None:
            REFRESHES.labels(reason, "lost_lease").inc()
            log.warning("refresh lease lapsed before the write; the new token was discarded")
            return None
        self.cache.remember(fresh)
        return fresh

