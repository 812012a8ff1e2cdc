"""Zoho's token endpoint failing, for as long as the test says, while tokens are due.

Each case connects a user, moves the broker's clock so the token has 100 s left (inside
the 120 s refresh window, still valid), injects one fault on every token call, and sends
a wave of 20 concurrent GetToken calls. Asserted, per kind:
- every caller got the valid token the broker holds (nobody saw an error);
- the connection is still ACTIVE (not REAUTH_REQUIRED), with the failure in last_error;
- Zoho minted nothing, the wave cost at most BROKER_ZOHO_MAX_ATTEMPTS token calls (one
  refresh, its bounded retries), and the broker's mint budget was charged at most once
  for it (only when the request may have reached Zoho: timeouts, resets) - never per retry;
- once the fault is gone, the next call refreshes with exactly one new mint.
`tests/broker/test_tokens.py` covers single faults that a retry absorbs.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from sandbox.control.client import SandboxControl
from tests.plugins.broker_fixtures import BrokerHandle, MakeBroker, ManualClock
from zoho.broker.v1 import broker_pb2
from zoho.common.v1 import common_pb2

pytestmark = pytest.mark.faults

GET = broker_pb2.GetTokenRequest(user_id="demo", app_type=common_pb2.APP_TYPE_CRM)
MAX_ATTEMPTS = 3
# (sandbox fault kind, extra fault settings, may the request have reached Zoho?)
FAULTS = {
    "status_500": ({}, False),
    "timeout": ({"kind": "hang"}, True),
    "slow_past_the_timeout": ({"kind": "hang", "seconds": 1.5}, True),
    "reset": ({}, True),
    "throttle": ({}, False),
    "no_access_token": ({}, False),
    "malformed": ({}, False),
    "non_json": ({}, False),
}


async def budget_used(handle: BrokerHandle, clock: ManualClock) -> int:
    record = await handle.broker.store.get("demo")
    assert record is not None
    since = clock() - timedelta(days=1)
    return len(await handle.broker.budget.mints_since(record.refresh_token_hash, since))


@pytest.mark.parametrize("name", list(FAULTS))
async def test_valid_tokens_keep_being_served_while_the_token_endpoint_fails(
    make_broker: MakeBroker, sandbox: SandboxControl, name: str
) -> None:
    extra, may_have_reached_zoho = FAULTS[name]
    clock = ManualClock()
    handle = await make_broker(clock=clock, BROKER_ZOHO_TIMEOUT_SECONDS="0.5",
                               BROKER_ZOHO_MAX_ATTEMPTS=str(MAX_ATTEMPTS))
    refresh = await sandbox.add_refresh_token()
    await handle.connect(refresh_token=refresh)
    held = (await handle.stub.GetToken(GET, timeout=10)).access_token
    minted = await sandbox.mint_count(refresh)
    budget = await budget_used(handle, clock)
    clock.advance(3600 - 100)
    await sandbox.clear_calls()
    kind = str(extra.get("kind", name))
    await sandbox.fault("token", kind, count=None,
                        **{k: v for k, v in extra.items() if k != "kind"})

    replies = await asyncio.gather(*(handle.stub.GetToken(GET, timeout=10) for _ in range(20)))

    assert {r.access_token for r in replies} == {held}
    assert len(await sandbox.calls("token")) <= MAX_ATTEMPTS
    assert await sandbox.mint_count(refresh) == minted
    assert await budget_used(handle, clock) <= budget + (1 if may_have_reached_zoho else 0)
    connection = await handle.stub.GetConnection(
        broker_pb2.GetConnectionRequest(user_id="demo"), timeout=10)
    assert connection.status == broker_pb2.CONNECTION_STATUS_ACTIVE
    assert connection.last_error

    # The fault ends (and a throttle's wait, 60 s, passes): one refresh, one mint.
    await sandbox.clear_faults()
    clock.advance(61)
    recovered = await asyncio.gather(*(handle.stub.GetToken(GET, timeout=10) for _ in range(20)))
    assert len({r.access_token for r in recovered}) == 1
    assert recovered[0].access_token != held
    assert await sandbox.mint_count(refresh) == minted + 1


async def test_slow_answers_within_the_timeout_are_waited_for_and_mint_once(
    make_broker: MakeBroker, sandbox: SandboxControl
) -> None:
    clock = ManualClock()
    handle = await make_broker(clock=clock, BROKER_ZOHO_TIMEOUT_SECONDS="3")
    refresh = await sandbox.add_refresh_token()
    await handle.connect(refresh_token=refresh)
    held = (await handle.stub.GetToken(GET, timeout=10)).access_token
    clock.advance(3600 - 100)
    await sandbox.latency("token", 1000, count=None)
    replies = await asyncio.gather(*(handle.stub.GetToken(
        broker_pb2.GetTokenRequest(user_id="demo", min_ttl_seconds=600), timeout=10)
        for _ in range(20)))
    assert len({r.access_token for r in replies}) == 1
    assert replies[0].access_token != held
    assert await sandbox.mint_count(refresh) == 2  # the import, then this one refresh
