"""ListNotifications for CRM, end to end: real notifier, real broker, real sandbox."""

from __future__ import annotations

import httpx
import pytest

from tests.notifier.helpers import (
    CRM,
    collect,
    crm_keys,
    invalidate_token_before_watch_call,
    list_request,
)
from zoho.broker.v1 import broker_pb2


@pytest.mark.slow
async def test_430_items_come_in_zohos_order_over_3_pages(sandbox, broker, notifier) -> None:
    await sandbox.seed_crm_channels(count=180, first_channel=2000000000001)
    expected = await sandbox.crm_channels()
    assert len(expected) == 430
    await broker.connect()

    items = await collect(notifier.stub, list_request())

    assert crm_keys(items) == crm_keys(expected)
    assert (await sandbox.call_counts())["crm.watch"] == 3


@pytest.mark.slow
async def test_items_carry_zohos_fields_but_never_the_verification_token(
    sandbox, broker, notifier
) -> None:
    expected = await sandbox.crm_channels()
    await broker.connect()

    items = await collect(notifier.stub, list_request(page_size=10))

    first, raw = items[0].crm, expected[0]
    assert list(first.events) == raw["events"]
    assert first.notify_url == raw["notify_url"]
    assert first.resource_id == raw["resource_id"]
    assert first.resource_uri == raw["resource_uri"]
    assert first.notify_on_related_action == raw["notify_on_related_action"]
    assert first.channel_expiry.seconds > 0
    secrets = {raw["token"] for raw in expected}
    streamed = b"".join(item.SerializeToString() for item in items)
    assert not any(secret.encode() in streamed for secret in secrets)


@pytest.mark.slow
async def test_page_size_sets_zohos_per_page(sandbox, broker, notifier) -> None:
    await broker.connect()
    items = await collect(notifier.stub, list_request(page_size=100))
    assert len(items) == 250
    assert (await sandbox.call_counts())["crm.watch"] == 3


@pytest.mark.slow
async def test_module_and_channel_filters_go_to_zoho(sandbox, broker, notifier) -> None:
    expected = await sandbox.crm_channels()
    await broker.connect()

    leads = await collect(notifier.stub, list_request(module="Leads"))
    assert crm_keys(leads) == [k for k in crm_keys(expected) if k[1] == "Leads"]

    channel = expected[7]["channel_id"]
    one = await collect(notifier.stub, list_request(channel_id=channel))
    assert crm_keys(one) == [k for k in crm_keys(expected) if k[0] == channel]
    assert len(one) > 1  # one item per module of the channel


@pytest.mark.slow
async def test_nothing_to_list_is_an_empty_stream(sandbox, broker, notifier) -> None:
    await broker.connect()
    assert await collect(notifier.stub, list_request(channel_id="999")) == []
    calls = await sandbox.calls("crm.watch")
    assert [c.status for c in calls] == [204]


@pytest.mark.slow
async def test_a_token_invalidated_between_pages_is_refreshed_once_and_nothing_is_lost(
    sandbox, broker, notifier
) -> None:
    expected = await sandbox.crm_channels()
    await broker.connect()
    notifier.http.before = invalidate_token_before_watch_call(sandbox, 2)
    # A stored token first, so the stream's GetToken mints nothing and the count is the refresh.
    await broker.stub.GetToken(broker_pb2.GetTokenRequest(user_id="demo", app_type=CRM))
    mints_before = await sandbox.mint_count("1000.sandbox.demo-refresh")

    items = await collect(notifier.stub, list_request(page_size=100))

    assert crm_keys(items) == crm_keys(expected)
    calls = await sandbox.calls("crm.watch")
    assert [c.status for c in calls] == [200, 401, 200, 200]
    assert calls[0].token == calls[1].token != calls[2].token == calls[3].token
    assert await sandbox.mint_count("1000.sandbox.demo-refresh") == mints_before + 1


@pytest.mark.slow
async def test_a_token_rejected_on_the_first_page_is_refreshed_too(
    sandbox, broker, notifier
) -> None:
    await broker.connect()
    first = True

    async def invalidate_first(request: httpx.Request, _: int) -> None:
        nonlocal first
        if first:
            first = False
            await sandbox.invalidate_access_token(request.headers["Authorization"].split()[1])

    notifier.http.before = invalidate_first
    items = await collect(notifier.stub, list_request())
    assert len(items) == 250
    assert [c.status for c in await sandbox.calls("crm.watch")] == [401, 200, 200]
