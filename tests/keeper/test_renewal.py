"""Renewal: a channel due within NOTIFIER_RENEW_BEFORE_SECONDS is PUT again with every
field and a fresh expiry, once, at its own spread time; throttling is retried before the
expiry and FAILING comes only once the channel has expired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notifier.keeper.store import spread
from tests.keeper.conftest import DAY, RENEW_BEFORE, TTL, watch_writes
from tests.live.helpers import crm_subscription
from tests.plugins.zoho_callbacks import crm_channel
from zoho.notifier.v1 import notifier_pb2

# Past every subscription's spread offset inside the renew window.
PAST_DUE = TTL - RENEW_BEFORE + RENEW_BEFORE / 2 + 60


async def _get(kept, sub):
    return await kept.stub.GetSubscription(
        notifier_pb2.GetSubscriptionRequest(user_id="demo", subscription_id=sub.subscription_id),
        timeout=10,
    )


@pytest.mark.slow
async def test_due_channel_renewed_once_with_every_field(kept, sandbox, connect_subscriber):
    await connect_subscriber()
    sub, before = await crm_subscription(kept.handle, sandbox, events=("Leads.all", "Deals.edit"))
    await kept.advance(TTL - RENEW_BEFORE - DAY)  # not yet in the window
    assert [c.method for c in await watch_writes(sandbox, sub.zoho_id)] == ["POST"]

    await kept.advance(PAST_DUE - (TTL - RENEW_BEFORE - DAY))
    writes = await watch_writes(sandbox, sub.zoho_id)
    assert [c.method for c in writes] == ["POST", "PUT"]
    after = await crm_channel(sandbox, sub.zoho_id)
    # Nothing Zoho would reset was left out: same URL, token, events, flags.
    for name in ("notify_url", "token", "notify_on_related_action",
                 "return_affected_field_values"):
        assert after[name] == before[name], name
    items = await sandbox.crm_channels("demo")
    assert sorted(e for i in items if i["channel_id"] == sub.zoho_id for e in i["events"]) == [
        "Deals.edit", "Leads.all"
    ]
    now = await sandbox.now()
    expiry = datetime.fromisoformat(after["channel_expiry"]).timestamp()
    assert abs(expiry - (now + TTL)) < 30

    got = await _get(kept, sub)
    assert got.status == notifier_pb2.SUBSCRIPTION_STATUS_ACTIVE
    assert abs(got.expires_at.ToDatetime(tzinfo=UTC).timestamp() - expiry) < 1
    assert abs(got.last_renewed_time.ToDatetime(tzinfo=UTC).timestamp() - now) < 30

    await kept.advance(DAY)  # renewed a moment ago: nothing is due
    assert len(await watch_writes(sandbox, sub.zoho_id)) == 2


def test_spread_offsets_differ_and_stay_in_the_first_half_of_the_window():
    window = timedelta(seconds=RENEW_BEFORE / 2)
    offsets = [spread(f"sub_{i:024x}", window) for i in range(200)]
    assert all(timedelta(0) <= o < window for o in offsets)
    # 200 channels created together: renewals land in many different seconds.
    assert len({int(o.total_seconds()) for o in offsets}) > 190


@pytest.mark.slow
async def test_throttled_renewal_is_retried_before_the_channel_expires(
    kept, sandbox, connect_subscriber
):
    await connect_subscriber()
    sub, _ = await crm_subscription(kept.handle, sandbox)
    await sandbox.fault("crm.watch", "throttle", count=3)
    await kept.advance(PAST_DUE)
    got = await _get(kept, sub)
    assert got.status == notifier_pb2.SUBSCRIPTION_STATUS_ACTIVE  # not expired: not FAILING
    assert "ZOHO_THROTTLED" in got.last_error
    assert len(await watch_writes(sandbox, sub.zoho_id)) == 1  # only the create got through
    # Backoff: retried later, and before the expiry.
    for _ in range(12):
        await kept.advance(3600)
    got = await _get(kept, sub)
    assert got.status == notifier_pb2.SUBSCRIPTION_STATUS_ACTIVE
    assert got.last_error == ""
    assert got.expires_at.ToDatetime(tzinfo=UTC).timestamp() > await sandbox.now() + TTL - DAY
    assert [c.method for c in await watch_writes(sandbox, sub.zoho_id)] == ["POST", "PUT"]


@pytest.mark.slow
async def test_failing_only_once_the_channel_has_expired(kept, sandbox, connect_subscriber):
    await connect_subscriber()
    sub, _ = await crm_subscription(kept.handle, sandbox)
    await sandbox.fault("crm.watch", "throttle", count=None)
    await kept.advance(PAST_DUE)
    assert (await _get(kept, sub)).status == notifier_pb2.SUBSCRIPTION_STATUS_ACTIVE
    for _ in range(4):
        await kept.advance(RENEW_BEFORE / 4)
    got = await _get(kept, sub)
    assert got.status == notifier_pb2.SUBSCRIPTION_STATUS_FAILING
    assert "ZOHO_THROTTLED" in got.last_error
    # Zoho back: the channel is put back, and watchers are told what may be missing.
    await sandbox.clear_faults()
    await kept.advance(3600)
    got = await _get(kept, sub)
    assert got.status == notifier_pb2.SUBSCRIPTION_STATUS_ACTIVE
    assert await crm_channel(sandbox, sub.zoho_id)
