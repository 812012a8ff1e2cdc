"""Zoho's budget of new access tokens per refresh token, counted from the audit table:
refreshes and imports (CreateConnection with a refresh_token mints too) count against,
and are refused by, this one check, across replicas."""

from __future__ import annotations

from datetime import datetime, timedelta

from broker.storage import audit
from broker.storage.connection_store import ConnectionStore
from servicekit.errors import THROTTLE_SOURCE_BUDGET, THROTTLE_SOURCE_ZOHO, ZohoThrottled


class MintBudget:
    def __init__(self, store: ConnectionStore, budget: int, window_seconds: int) -> None:
        self.store = store
        self.budget = budget
        self.window_seconds = window_seconds

    async def mints_since(self, refresh_token_hash: str, since: datetime) -> list[datetime]:
        """When Zoho may have minted tokens for this refresh token since `since`, oldest first."""
        return await audit.mint_times(self.store, refresh_token_hash, since)

    async def check(self, refresh_token_hash: str, now: datetime) -> None:
        """Refuses a call to Zoho's token endpoint for this refresh token once the budget
        of new tokens in the window is spent."""
        window = timedelta(seconds=self.window_seconds)
        mints = await self.mints_since(refresh_token_hash, now - window)
        budget = self.budget
        if len(mints) >= budget:
            # The budget frees up when the oldest mint that fills it ages out.
            frees_at = mints[-budget] + window
            raise ZohoThrottled(
                f"this connection already got {len(mints)} new tokens from Zoho in the last "
                f"{self.window_seconds // 60} minutes (Zoho allows {budget}); retry later",
                retry_after=max(1.0, (frees_at - now).total_seconds()),
                source=THROTTLE_SOURCE_BUDGET,
            )


def check_not_throttled(throttled_until: datetime | None, now: datetime, *, what: str) -> None:
    """Zoho's own throttle answer, kept on the row: no token call for `what` before it ends."""
    if throttled_until and throttled_until > now:
        raise ZohoThrottled(
            f"Zoho throttled new tokens for this {what}; retry later",
            retry_after=(throttled_until - now).total_seconds(), source=THROTTLE_SOURCE_ZOHO,
        )
