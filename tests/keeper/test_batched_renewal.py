"""A user's due channels are renewed in one pass: one PUT per 50 channels, each item of a
207 taken on its own (the one Zoho refused stays due, the others are renewed)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from notifier.database.models import SubscriptionRow
from tests.keeper.conftest import DAY, TTL, Kept, kept_notifier
from tests.keeper.test_renewal import PAST_DUE
from tests.live.helpers import CRM
from zoho.notifier.v1 import notifier_pb2


@pytest.fixture
async def kept(sandbox, broker, notifier_database_url) -> AsyncIterator[Kept]:
    """No reconcile during the test (it would try to put the broken channel back)."""
    async with kept_notifier(
        sandbox, broker, notifier_database_url, reconcile_seconds=30 * DAY
    ) as notifier:
        yield notifier


async def _create(kept, count: int) -> list[notifier_pb2.Subscription]:
    limit = asyncio.Semaphore(8)

    async def one() -> notifier_pb2.Subscription:
        async with limit:
            return await kept.stub.CreateSubscription(
                notifier_pb2.CreateSubscriptionRequest(
                    user_id="demo", app_type=CRM, events=["Leads.all"]
                ),
                timeout=30,
            )

    return list(await asyncio.gather(*(one() for _ in range(count))))


@pytest.mark.slow
async def test_120_channels_of_a_user_renewed_with_3_puts_and_a_207_handled_per_channel(
    kept, sandbox, connect_subscriber
):
    await connect_subscriber()
    subs = await _create(kept, 120)
    await kept.advance(0)
    broken = subs[7]
    # A module Zoho does not know: its item of the PUT fails, the others succeed (207).
    async with kept.handle.app.live.engine.begin() as conn:
        await conn.execute(
            update(SubscriptionRow)
            .where(SubscriptionRow.id == broken.subscription_id)
            .values(events=json.dumps(["Bogus.all"]))
        )
    before = {s.subscription_id: (await kept.row(s.subscription_id)).expires_at for s in subs}
    await sandbox.clear_calls()

    await kept.advance(PAST_DUE)

    # Days passed: the first PUT's access token had expired (401, retried with a new one).
    puts = [c for c in await sandbox.calls("crm.watch") if c.method == "PUT" and c.channel_ids]
    assert sorted(c.status for c in puts) == [200, 200, 207]
    assert sorted(len(c.channel_ids) for c in puts) == [20, 50, 50]
    assert sorted(i for c in puts for i in c.channel_ids) == sorted(s.zoho_id for s in subs)
    now = datetime.fromtimestamp(await sandbox.now(), UTC)
    live = {i["channel_id"]: i for i in await sandbox.crm_channels("demo")}
    for sub in subs:
        row = await kept.row(sub.subscription_id)
        if sub is broken:
            continue
        assert row.expires_at > before[sub.subscription_id] + timedelta(days=1), sub.zoho_id
        assert row.expires_at > now + timedelta(seconds=TTL - 120)
        expiry = datetime.fromisoformat(live[sub.zoho_id]["channel_expiry"])
        assert abs((expiry - row.expires_at).total_seconds()) < 2
        assert row.last_error is None
    # The refused one is not renewed: its expiry is as it was, and it is due again soon.
    row = await kept.row(broken.subscription_id)
    assert row.expires_at == before[broken.subscription_id]
    assert "INVALID_MODULE" in row.last_error
    keeper_row = await kept.keeper_row(broken.subscription_id)
    assert keeper_row.attempts == 1
    assert keeper_row.renew_at < row.expires_at
    due = await kept.keeper.store.due_renewals(now + timedelta(hours=2), 500)
    assert [d.id for d in due] == [broken.subscription_id]
