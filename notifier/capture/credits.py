"""The read-back budget: NOTIFIER_RECOVERY_CREDITS_PER_DAY Zoho API credits per Zoho org
in any rolling 24 hours (CRM and Desk apart), persisted and shared by every replica, as
the broker's mint budget is; spent before each call and refused past it.

Each spend locks its org's row first (an UPDATE: PostgreSQL's row lock, SQLite's one
writer), so two replicas cannot both take the last credit. Zoho's own count, the
X-API-CREDITS-REMAINING it sends once half the day's allowance is spent, is kept on that
row: below a floor, sweeps stop and only gap windows are read."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.capture.models import CreditOrg, CreditSpend
from servicekit.errors import CreditsExhausted

WINDOW = timedelta(hours=24)
# How long a remaining count Zoho sent is believed: its allowance is a rolling window.
REMAINING_TRUSTED = timedelta(hours=1)


class CreditBudget:
    def __init__(self, engine: AsyncEngine, per_day: int, *, sweep_floor: int) -> None:
        self.engine = engine
        self.per_day = per_day
        self.sweep_floor = sweep_floor
        postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if postgres else sqlite.insert

    async def spend(self, org_key: str, credits: int, now: datetime) -> None:
        """Takes `credits` from the org's budget, or raises CreditsExhausted (with when
        enough frees up) and takes nothing."""
        async with self.engine.begin() as conn:
            await conn.execute(
                self._insert(CreditOrg).values(org_key=org_key, version=0)
                .on_conflict_do_nothing()
            )
            org = (
                await conn.execute(
                    update(CreditOrg).where(CreditOrg.org_key == org_key)
                    .values(version=CreditOrg.version + 1)
                    .returning(CreditOrg.zoho_remaining, CreditOrg.zoho_remaining_at)
                )
            ).one()
            if (
                org.zoho_remaining is not None and org.zoho_remaining_at is not None
                and org.zoho_remaining < credits and now - org.zoho_remaining_at < REMAINING_TRUSTED
            ):
                raise CreditsExhausted(
                    f"Zoho says {org.zoho_remaining} API credits are left for {org_key}",
                    retry_after=(org.zoho_remaining_at + REMAINING_TRUSTED - now).total_seconds(),
                )
            spends = (
                await conn.execute(
                    select(CreditSpend.spent_at, CreditSpend.credits)
                    .where(CreditSpend.org_key == org_key, CreditSpend.spent_at > now - WINDOW)
                    .order_by(CreditSpend.spent_at)
                )
            ).all()
            used = sum(amount for _, amount in spends)
            if used + credits > self.per_day:
                # Enough frees up when the oldest spends that fill it age out.
                freed, frees_at = 0, now + WINDOW
                for spent_at, amount in spends:
                    freed += amount
                    if used - freed + credits <= self.per_day:
                        frees_at = spent_at + WINDOW
                        break
                raise CreditsExhausted(
                    f"read-backs spent {used} of {self.per_day} API credits for {org_key} "
                    "in the last 24 hours",
                    retry_after=max(1.0, (frees_at - now).total_seconds()),
                )
            await conn.execute(
                self._insert(CreditSpend).values(org_key=org_key, spent_at=now, credits=credits)
            )

    async def zoho_says(self, org_key: str, remaining: int, now: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(CreditOrg).where(CreditOrg.org_key == org_key)
                .values(zoho_remaining=remaining, zoho_remaining_at=now)
            )

    async def sweeping_allowed(self, org_key: str, now: datetime) -> bool:
        """False while Zoho's last word puts the org below the floor: gap windows only."""
        async with self.engine.connect() as conn:
            org = (
                await conn.execute(
                    select(CreditOrg.zoho_remaining, CreditOrg.zoho_remaining_at)
                    .where(CreditOrg.org_key == org_key)
                )
            ).first()
        if org is None or org.zoho_remaining is None or org.zoho_remaining_at is None:
            return True
        stale = now - org.zoho_remaining_at >= REMAINING_TRUSTED
        return stale or org.zoho_remaining >= self.sweep_floor

    async def spent(self, org_key: str, now: datetime) -> int:
        async with self.engine.connect() as conn:
            used = (
                await conn.execute(
                    select(func.coalesce(func.sum(CreditSpend.credits), 0))
                    .where(CreditSpend.org_key == org_key, CreditSpend.spent_at > now - WINDOW)
                )
            ).scalar_one()
        return int(used)

    async def remaining(self, now: datetime) -> dict[str, int]:
        """What each org that ever spent may still spend in the rolling 24 hours (metrics)."""
        async with self.engine.connect() as conn:
            orgs = (await conn.execute(select(CreditOrg.org_key))).scalars().all()
            spent = {
                org: int(used or 0)
                for org, used in await conn.execute(
                    select(CreditSpend.org_key, func.sum(CreditSpend.credits))
                    .where(CreditSpend.spent_at > now - WINDOW)
                    .group_by(CreditSpend.org_key)
                )
            }
        return {org: max(self.per_day - spent.get(org, 0), 0) for org in orgs}

    async def prune(self, now: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(CreditSpend).where(CreditSpend.spent_at <= now - WINDOW))
