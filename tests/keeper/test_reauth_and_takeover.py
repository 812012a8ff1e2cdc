"""When the keeper cannot: a revoked grant makes the user's subscriptions
REAUTH_REQUIRED and Zoho is not called again until the broker has a working connection;
a replica that died holding a renewal's lease is taken over without a second renewal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notifier.database.models import STATUS_ACTIVE, STATUS_REAUTH_REQUIRED
from tests.keeper.conftest import PROBE, RECONCILE, RENEW_BEFORE, TTL, watch_writes
from tests.live.helpers import crm_subscription
from tests.plugins.live_fixtures import SUBSCRIBING_SCOPES
from tests.plugins.zoho_callbacks import crm_channel
from zoho.notifier.v1 import notifier_pb2 as pb

PAST_DUE = TTL - RENEW_BEFORE + RENEW_BEFORE / 2 + 60


async def _connect(sandbox, broker, scopes=SUBSCRIBING_SCOPES) -> str:
    token = await sandbox.add_refresh_token(user="demo", scopes=scopes)
    await broker.connect("demo", refresh_token=token, scopes=scopes)
    return token


async def _zoho_calls(sandbox) -> int:
    return len([c for c in await sandbox.calls() if c.route.startswith(("crm.", "desk."))])


@pytest.mark.slow
async def test_revoked_grant_is_reauth_required_then_active_after_reconnecting(
    kept, sandbox, broker
):
    token = await _connect(sandbox, broker)
    sub, _ = await crm_subscription(kept.handle, sandbox)
    await kept.advance(0)
    await sandbox.revoke_refresh_token(token)
    await kept.advance(PAST_DUE)
    got = await kept.stub.ListSubscriptions(pb.ListSubscriptionsRequest(user_id="demo"), timeout=10)
    assert [s.status for s in got.subscriptions] == [pb.SUBSCRIPTION_STATUS_REAUTH_REQUIRED]
    assert "REAUTH_REQUIRED" in got.subscriptions[0].last_error

    calls = await _zoho_calls(sandbox)
    for _ in range(4):  # reconciles and probes come due: only the broker is asked
        await kept.advance(RECONCILE)
    assert await _zoho_calls(sandbox) == calls
    assert (await kept.row(sub.subscription_id)).status == STATUS_REAUTH_REQUIRED

    await _connect(sandbox, broker)
    await kept.advance(PROBE)
    row = await kept.row(sub.subscription_id)
    assert row.status == STATUS_ACTIVE and row.last_error is None
    channel = await crm_channel(sandbox, sub.zoho_id)
    assert datetime.fromisoformat(channel["channel_expiry"]).timestamp() > (
        await sandbox.now() + TTL - 60
    )


@pytest.mark.slow
async def test_missing_scope_stops_zoho_calls(kept, sandbox, broker):
    await _connect(sandbox, broker)
    sub, _ = await crm_subscription(kept.handle, sandbox)
    await kept.advance(0)
    # Reconnected with a grant that can no longer update channels.
    await _connect(sandbox, broker, scopes=["ZohoCRM.notifications.READ", "Desk.basic.READ"])
    await kept.advance(RECONCILE)
    row = await kept.row(sub.subscription_id)
    assert row.status == STATUS_REAUTH_REQUIRED
    assert "MISSING_SCOPE" in row.last_error
    calls = await _zoho_calls(sandbox)
    await kept.advance(PAST_DUE)
    assert await _zoho_calls(sandbox) == calls


async def _die_holding_the_lease(kept, sub, *, renewed: bool) -> None:
    """What a replica SIGKILLed mid-renewal leaves: a live lease, maybe a PUT at Zoho."""
    keeper = kept.keeper
    await kept.sandbox.advance_clock(PAST_DUE)
    await keeper.clock.sync()
    now = keeper.clock.now()
    [due] = [r for r in await keeper.store.due_renewals(now, 10) if r.id == sub.subscription_id]
    until = now + timedelta(seconds=keeper.config.lease_seconds)
    fence = (await keeper.store.claim_rows([(due.id, due.version)], "dead-replica", until,
                                           now)).get(due.id)
    assert fence is not None
    if renewed:
        assert await keeper.renewer._zoho.crm_put(due, now + timedelta(seconds=TTL)) is None


@pytest.mark.slow
async def test_a_lease_of_a_dead_replica_is_taken_over_without_renewing_twice(
    kept, sandbox, connect_subscriber
):
    await connect_subscriber()
    sub, _ = await crm_subscription(kept.handle, sandbox)
    await kept.advance(0)
    await _die_holding_the_lease(kept, sub, renewed=True)
    await kept.advance(0)  # the lease is live: nobody touches it
    assert (await kept.keeper_row(sub.subscription_id)).lease_owner == "dead-replica"
    await kept.advance(kept.keeper.config.lease_seconds + 1)
    row = await kept.keeper_row(sub.subscription_id)
    assert row.lease_owner is None
    assert [c.method for c in await watch_writes(sandbox, sub.zoho_id)] == ["POST", "PUT"]
    got = await kept.row(sub.subscription_id)
    assert got.expires_at > datetime.fromtimestamp(await sandbox.now(), UTC) + timedelta(
        seconds=TTL - 120)


@pytest.mark.slow
async def test_a_dead_replicas_renewal_that_never_left_is_done_once(
    kept, sandbox, connect_subscriber
):
    await connect_subscriber()
    sub, _ = await crm_subscription(kept.handle, sandbox)
    await kept.advance(0)
    await _die_holding_the_lease(kept, sub, renewed=False)
    await kept.advance(kept.keeper.config.lease_seconds + 1)
    assert [c.method for c in await watch_writes(sandbox, sub.zoho_id)] == ["POST", "PUT"]
    await kept.advance(3600)
    assert len(await watch_writes(sandbox, sub.zoho_id)) == 2
