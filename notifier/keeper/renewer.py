"""A user's due CRM channels renewed in one pass, under the leases claimed for them: one
PUT per WRITE_ITEMS channels (so one broker token and few Zoho calls), each channel's
result of a 207 taken on its own, and every outcome written in one transaction.

Rows taken over from a replica that died (its lease ran out) are first looked up at Zoho:
if the dead replica's PUT landed, the channel is recorded as renewed instead of renewed
twice."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from notifier.app_types import CRM
from notifier.database.models import STATUS_ACTIVE, STATUS_FAILING, STATUS_REAUTH_REQUIRED
from notifier.keeper import metrics
from notifier.keeper.config import KeeperConfig
from notifier.keeper.gaps import Gaps
from notifier.keeper.outcomes import Kind, describe, kind_of, reason_of, retry_after
from notifier.keeper.records import Kept
from notifier.keeper.store import KeeperStore, Outcome, renew_at
from notifier.keeper.zoho_side import WRITE_ITEMS, ZohoSide
from notifier.subscriptions.records import Subscription

log = logging.getLogger(__name__)
# Per row of a write: None (done), Zoho's code for its item, or the call's failure.
Result = str | BaseException | None


@dataclass
class Claimed:
    row: Kept
    fence: int
    took_over: bool


class Renewer:
    def __init__(
        self, store: KeeperStore, zoho: ZohoSide, gaps: Gaps, config: KeeperConfig,
        ttl_seconds: float,
    ) -> None:
        self._store = store
        self._zoho = zoho
        self._gaps = gaps
        self._config = config
        self._ttl = timedelta(seconds=ttl_seconds)
        self._before = timedelta(seconds=config.renew_before_seconds)

    def next_due(self, row: Subscription, expires_at: datetime, now: datetime) -> datetime:
        return max(now, renew_at(row.id, expires_at, self._before, now))

    async def renew_user(
        self, user_id: str, claimed: Sequence[Claimed], now: datetime
    ) -> list[str]:
        """Renews the claimed rows of one user; an outcome label per row."""
        outcomes: dict[str, tuple[Outcome, str]] = {}
        taken = [c for c in claimed if c.took_over]
        if taken:
            outcomes.update(await self._landed(user_id, taken, now))
        todo = [c for c in claimed if c.row.id not in outcomes]
        expiry = now + self._ttl
        blocked: BaseException | None = None
        lapsed: set[str] = set()
        for start in range(0, len(todo), WRITE_ITEMS):
            chunk = todo[start:start + WRITE_ITEMS]
            if blocked is None:
                results, gone = await self._write(user_id, [c.row for c in chunk], expiry)
                lapsed |= gone
            else:  # no more Zoho calls for this user once the broker said so
                results = {c.row.id: blocked for c in chunk}
            for c in chunk:
                result = results[c.row.id]
                if isinstance(result, BaseException) and kind_of(result) is Kind.BLOCKED:
                    blocked = result
                outcomes[c.row.id] = self._outcome(c, result, expiry, now)
        done = await self._store.finish_rows([o for o, _ in outcomes.values()], now)
        labels = []
        for c in claimed:
            label = outcomes[c.row.id][1] if c.row.id in done else "lost_lease"
            row = c.row
            if label == "renewed" and (
                row.id in lapsed or (row.expires_at is not None and row.expires_at <= now)
            ):
                await self._gaps.seen(row, since=row.verified_at or row.expires_at, until=now)
                metrics.REPAIRS.labels("crm", "missing", "repaired").inc()
                label = "recreated"
            labels.append(label)
        if blocked is not None:
            await self._block(user_id, blocked, now)
        return labels

    async def _write(
        self, user_id: str, rows: Sequence[Kept], expiry: datetime
    ) -> tuple[dict[str, Result], set[str]]:
        """One PUT (and one POST for those gone at Zoho): per row its result, and the ids
        that were gone."""
        results: dict[str, Result] = {}
        try:
            codes = await self._zoho.crm_write(user_id, rows, expiry)
        except Exception as failed:  # every failure is recorded, none is fatal
            return {row.id: failed for row in rows}, set()
        results.update(zip([row.id for row in rows], codes, strict=True))
        gone = [row for row in rows if results[row.id] == "NOT_SUBSCRIBED"]
        if gone:
            # Expired or deleted at Zoho: enabled again, same id and token.
            try:
                again = await self._zoho.crm_write(user_id, gone, expiry, method="POST")
                results.update(zip([row.id for row in gone], again, strict=True))
            except Exception as failed:
                results.update({row.id: failed for row in gone})
        return results, {row.id for row in gone}

    def _outcome(
        self, c: Claimed, result: Result, expiry: datetime, now: datetime
    ) -> tuple[Outcome, str]:
        row = c.row
        if result is None:
            return Outcome(
                row.id, c.fence,
                {"renew_at": self.next_due(row, expiry, now), "attempts": 0, "verified_at": now},
                {"status": STATUS_ACTIVE, "expires_at": expiry.replace(microsecond=0),
                 "last_renewed_time": now, "last_error": None},
            ), "renewed"
        if isinstance(result, str):
            return self._retry(c, now, f"ZOHO_REJECTED: {result}", None)
        if kind_of(result) is Kind.BLOCKED:
            return Outcome(
                row.id, c.fence, {"attempts": row.attempts + 1},
                {"status": STATUS_REAUTH_REQUIRED, "last_error": describe(result)},
            ), "reauth_required"
        return self._retry(c, now, describe(result), retry_after(result))

    async def _block(self, user_id: str, failed: BaseException, now: datetime) -> None:
        log.warning("renewals of %s blocked: %s", user_id, reason_of(failed))
        await self._store.set_status(user_id, CRM, STATUS_REAUTH_REQUIRED, describe(failed), now)
        await self._store.block_user(
            user_id, CRM, reason_of(failed),
            now + timedelta(seconds=self._config.blocked_probe_seconds),
        )

    async def _landed(
        self, user_id: str, taken: Sequence[Claimed], now: datetime
    ) -> dict[str, tuple[Outcome, str]]:
        """Rows whose dead replica's PUT reached Zoho: recorded, not renewed again."""
        try:
            channels = await self._zoho.crm_channels(user_id)
        except Exception:  # then renew as usual
            return {}
        found = {}
        for c in taken:
            seen = channels.get(c.row.channel_id)
            if seen is None or seen.expires_at is None or seen.expires_at - now <= self._before:
                continue
            found[c.row.id] = (Outcome(
                c.row.id, c.fence,
                {"renew_at": self.next_due(c.row, seen.expires_at, now), "attempts": 0,
                 "verified_at": now},
                {"status": STATUS_ACTIVE, "expires_at": seen.expires_at, "last_error": None},
            ), "already_renewed")
        return found

    def _retry(
        self, c: Claimed, now: datetime, error: str, after: float | None
    ) -> tuple[Outcome, str]:
        """Backoff, but the next try always comes before the channel expires; FAILING
        only once it actually has."""
        row = c.row
        attempts = row.attempts + 1
        base = self._config.retry_base_seconds * 2 ** min(attempts - 1, 16)
        delay = min(self._config.retry_max_seconds, base) * random.uniform(0.5, 1.0)
        if after is not None:
            delay = max(delay, after)
        at = now + timedelta(seconds=delay)
        expires = row.expires_at
        if expires is not None and expires > now and at >= expires:
            # Halfway to the expiry: several more tries fit before it.
            at = now + (expires - now) / 2
        lapsed = expires is None or expires <= now
        log.info("renewal of %s failed (%s); retry in %.0f s", row.id, error, delay)
        return Outcome(
            row.id, c.fence, {"renew_at": at, "attempts": attempts},
            {"status": STATUS_FAILING if lapsed else row.status, "last_error": error},
        ), "failing" if lapsed else "retry"
