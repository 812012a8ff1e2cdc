"""ListNotificationPages: ListNotifications' items, one message per Zoho page. End to end
against the real notifier, broker and sandbox; what it shares with ListNotifications
(validation, errors, refresh, the page-ahead bound) is checked here through this RPC."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from servicekit.errors import NOT_CONNECTED_MESSAGE
from tests.notifier.helpers import (
    CRM,
    DESK,
    collect,
    crm_keys,
    fail_crm_watch_from_request,
    invalidate_token_before_watch_call,
    list_request,
)
from tests.rpc_errors import bad_fields, reason
from zoho.broker.v1 import broker_pb2
from zoho.notifier.v1 import notifier_pb2

DEMO_ORG = "3981311"


def pages_request(**kw: Any) -> notifier_pb2.ListNotificationPagesRequest:
    return notifier_pb2.ListNotificationPagesRequest(
        **{"user_id": "demo", "app_type": CRM, **kw}
    )


async def pages(stub: Any, request: Any, **kw: Any) -> list[list[notifier_pb2.Notification]]:
    return [list(page.notifications) async for page in stub.ListNotificationPages(request, **kw)]


@pytest.mark.slow
async def test_430_items_come_as_3_messages_one_per_zoho_page_in_order(
    sandbox, broker, notifier
) -> None:
    await sandbox.seed_crm_channels(count=180, first_channel=2000000000001)
    expected = await sandbox.crm_channels()
    await broker.connect()

    got = await pages(notifier.stub, pages_request())

    assert [len(p) for p in got] == [200, 200, 30]
    assert crm_keys([item for page in got for item in page]) == crm_keys(expected)
    assert (await sandbox.call_counts())["crm.watch"] == 3


@pytest.mark.slow
@pytest.mark.parametrize(
    ("app_type", "page_size", "sizes"), [(CRM, 100, [100, 100, 50]), (DESK, 2, [2, 2, 1])]
)
async def test_the_same_items_as_list_notifications_item_by_item(
    sandbox, broker, notifier, app_type, page_size, sizes
) -> None:
    await broker.connect()
    items = await collect(notifier.stub, list_request(app_type=app_type, page_size=page_size))
    got = await pages(notifier.stub, pages_request(app_type=app_type, page_size=page_size))
    assert [len(p) for p in got] == sizes
    assert [item for page in got for item in page] == items


async def test_nothing_to_list_is_an_empty_stream_not_an_empty_page(
    sandbox, broker, notifier
) -> None:
    await broker.connect()
    assert await pages(notifier.stub, pages_request(channel_id="999")) == []
    assert [c.status for c in await sandbox.calls("crm.watch")] == [204]


@pytest.mark.slow
async def test_a_token_invalidated_between_pages_is_refreshed_once_and_nothing_is_lost(
    sandbox, broker, notifier
) -> None:
    expected = await sandbox.crm_channels()
    await broker.connect()
    notifier.http.before = invalidate_token_before_watch_call(sandbox, 2)
    await broker.stub.GetToken(broker_pb2.GetTokenRequest(user_id="demo", app_type=CRM))
    mints_before = await sandbox.mint_count("1000.sandbox.demo-refresh")

    got = await pages(notifier.stub, pages_request(page_size=100))

    assert [len(p) for p in got] == [100, 100, 50]
    assert crm_keys([item for page in got for item in page]) == crm_keys(expected)
    assert [c.status for c in await sandbox.calls("crm.watch")] == [200, 401, 200, 200]
    assert await sandbox.mint_count("1000.sandbox.demo-refresh") == mints_before + 1


async def test_malformed_requests_name_every_bad_field_before_zoho_is_asked(
    sandbox, notifier
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await pages(notifier.stub, pages_request(user_id="", page_size=201, channel_id="abc"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(caught.value) == {"user_id", "page_size", "channel_id"}
    assert (await sandbox.call_counts()).get("crm.watch", 0) == 0


@pytest.mark.slow
@pytest.mark.parametrize("app_type", [CRM, DESK])
async def test_no_connection_passes_the_brokers_error_through(
    sandbox, broker, notifier, app_type
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await pages(notifier.stub, pages_request(user_id="nobody", app_type=app_type))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(caught.value) == "NOT_CONNECTED"
    assert caught.value.details() == NOT_CONNECTED_MESSAGE


@pytest.mark.slow
async def test_an_error_after_a_page_ends_the_stream_with_its_status_after_that_page(
    sandbox, broker, notifier
) -> None:
    await broker.connect()
    notifier.http.before = fail_crm_watch_from_request(sandbox, 2)
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for page in notifier.stub.ListNotificationPages(pages_request(page_size=100)):
            received.append(len(page.notifications))
    assert received == [100]
    assert reason(caught.value) == "ZOHO_UNAVAILABLE"


async def test_desk_pages_carry_the_org_id(sandbox, broker, notifier) -> None:
    await broker.connect()
    got = await pages(notifier.stub, pages_request(app_type=DESK))
    assert [len(p) for p in got] == [5]
    assert [c.org_id for c in await sandbox.calls("desk.webhooks")] == [DEMO_ORG]


@pytest.mark.slow
async def test_no_channel_verification_token_is_streamed(sandbox, broker, notifier) -> None:
    expected = await sandbox.crm_channels()
    await broker.connect()
    streamed = b"".join(
        [page.SerializeToString()
         async for page in notifier.stub.ListNotificationPages(pages_request())]
    )
    assert streamed
    assert not any(raw["token"].encode() in streamed for raw in expected)
