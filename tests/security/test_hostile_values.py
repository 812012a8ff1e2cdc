"""Field values an attack pass turned into INTERNAL, and identifiers one service accepted
that the other refused (issue 11, items 3 and 9).

Injected: malformed URLs (`http://[x`), page tokens decoding to a lone surrogate or a NUL,
Timestamps outside their range, Unicode digits and trailing newlines in identifiers,
NaN in a Struct. Asserted: INVALID_ARGUMENT with a BadRequest naming the field, and
nothing sent to Zoho.
"""

from __future__ import annotations

import base64
import json

import grpc
import pytest
from google.protobuf import timestamp_pb2

from sandbox.control.client import SandboxControl
from servicekit import identifiers
from tests.plugins.broker_fixtures import BrokerHandle
from tests.plugins.notifier_fixtures import NotifierHandle
from tests.rpc_errors import seen
from zoho.broker.v1 import broker_pb2
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2


async def refused(call: object, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    error = seen(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT, error
    assert error.reason == "INVALID_ARGUMENT"
    assert field in error.bad_fields, error.bad_fields


def page_token(after: object) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()


@pytest.mark.slow
@pytest.mark.parametrize("redirect_uri", ["http://[x", "https://[::1", "http://h:99999/cb",
                                          "http://h:abc/cb", "http:///cb", "http://h/a b"])
async def test_a_malformed_redirect_uri_is_invalid_argument(
    broker: BrokerHandle, sandbox: SandboxControl, redirect_uri: str
) -> None:
    request = broker_pb2.CreateConnectionRequest(
        user_id="demo", accounts_server=sandbox.origin, authorization_code="1000.abc.def",
        redirect_uri=redirect_uri)
    await refused(broker.stub.CreateConnection(request, timeout=10), "redirect_uri")
    assert not await sandbox.calls("token")


@pytest.mark.slow
@pytest.mark.parametrize("after", ["\ud800", "a\udfffb", "\x00", "demo\x00", " demo", "x" * 300])
async def test_a_page_token_holding_what_no_user_id_may_is_invalid_argument(
    broker: BrokerHandle, after: str
) -> None:
    await broker.connect()
    request = broker_pb2.ListConnectionsRequest(page_token=page_token(after))
    await refused(broker.stub.ListConnections(request, timeout=10), "page_token")
    # A real token still pages.
    first = await broker.stub.ListConnections(broker_pb2.ListConnectionsRequest(page_size=1),
                                              timeout=10)
    assert [c.user_id for c in first.connections] == ["demo"]


def expiry_channel(seconds: int, nanos: int) -> notifier_pb2.CrmChannelSpec:
    return notifier_pb2.CrmChannelSpec(
        channel_id="1001", events=["Leads.create"], notify_url="https://hooks.example.com/z",
        channel_expiry=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos))


@pytest.mark.slow
@pytest.mark.parametrize(("seconds", "nanos"), [(1_900_000_000, -5), (2**62, 0), (-(2**62), 0),
                                                (1_900_000_000, 1_000_000_000),
                                                (253_402_300_800, 0)])
@pytest.mark.parametrize("method", ["EnableCrmChannels", "ReplaceCrmChannels",
                                    "UpdateCrmChannels"])
async def test_a_channel_expiry_outside_the_timestamp_range_is_invalid_argument(
    sandbox: SandboxControl, broker: BrokerHandle, notifier: NotifierHandle,
    method: str, seconds: int, nanos: int
) -> None:
    await broker.connect()
    request_cls = getattr(notifier_pb2, f"{method}Request")
    request = request_cls(user_id="demo", channels=[expiry_channel(seconds, nanos)])
    await refused(getattr(notifier.stub, method)(request, timeout=10),
                  "channels[0].channel_expiry")
    assert not await sandbox.calls("crm.watch")


@pytest.mark.slow
@pytest.mark.parametrize("url", ["http://[x", "https://h:65536/", "http:// /hook", "http://"])
async def test_malformed_notify_and_webhook_urls_are_invalid_argument(
    sandbox: SandboxControl, broker: BrokerHandle, notifier: NotifierHandle, url: str
) -> None:
    await broker.connect()
    channel = notifier_pb2.CrmChannelSpec(channel_id="1001", events=["Leads.create"],
                                          notify_url=url)
    await refused(notifier.stub.EnableCrmChannels(notifier_pb2.EnableCrmChannelsRequest(
        user_id="demo", channels=[channel]), timeout=10), "channels[0].notify_url")
    webhook = notifier_pb2.DeskWebhookSpec(name="w", url=url, subscriptions=["Ticket_Add"])
    await refused(notifier.stub.CreateDeskWebhook(notifier_pb2.CreateDeskWebhookRequest(
        user_id="demo", webhook=webhook), timeout=10), "webhook.url")
    assert not await sandbox.calls("crm.watch")


@pytest.mark.slow
async def test_a_struct_number_json_cannot_carry_is_invalid_argument(
    sandbox: SandboxControl, broker: BrokerHandle, notifier: NotifierHandle
) -> None:
    await broker.connect()
    webhook = notifier_pb2.DeskWebhookSpec(name="w", url="https://hooks.example.com/d",
                                           subscriptions=["Ticket_Update"])
    webhook.subscription_options.update({"Ticket_Update": {"limit": float("nan")}})
    await refused(notifier.stub.CreateDeskWebhook(notifier_pb2.CreateDeskWebhookRequest(
        user_id="demo", webhook=webhook), timeout=10),
        "webhook.subscription_options.Ticket_Update.limit")


# ---- item 9: one rule per identifier, ASCII only, matched whole ---------------------------

UNICODE_DIGITS = ["²³", "١٢٣", "۱۲۳", "१२३", "\uff11\uff12\uff13", "12\n", "12\x00"]


@pytest.mark.slow
@pytest.mark.parametrize("desk_org_id", UNICODE_DIGITS)
async def test_the_broker_refuses_a_desk_org_id_the_notifier_would_refuse(
    broker: BrokerHandle, desk_org_id: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await broker.connect(desk_org_id=desk_org_id)
    error = seen(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.bad_fields == ["desk_org_id"]
    assert not await broker.sandbox.calls("token")


@pytest.mark.slow
@pytest.mark.parametrize(("field", "value"), [("module", "Leads\n"), ("module", "Leads\u0663"),
                                              ("channel_id", "12\n"), ("channel_id", "١٢")])
async def test_the_notifier_refuses_identifiers_with_a_newline_or_unicode_digits(
    sandbox: SandboxControl, broker: BrokerHandle, notifier: NotifierHandle,
    field: str, value: str
) -> None:
    await broker.connect()
    request = notifier_pb2.ListNotificationsRequest(
        user_id="demo", app_type=common_pb2.APP_TYPE_CRM, **{field: value})
    await refused(_drain(notifier.stub.ListNotifications(request, timeout=10)), field)
    assert not await sandbox.calls("crm.watch")


async def _drain(stream: object) -> None:
    async for _ in stream:  # type: ignore[attr-defined]
        pass


@pytest.mark.slow
@pytest.mark.parametrize("rpc", ["EnableCrmChannels", "CreateSubscription"])
@pytest.mark.parametrize("event", ["Leads.create\n", "Leads.all\n", "Leads.all\x00",
                                   "Lead\u0455.create"])
async def test_crm_events_are_matched_whole(
    sandbox: SandboxControl, broker: BrokerHandle, notifier: NotifierHandle, event: str,
    rpc: str,
) -> None:
    """Issue 22 item 8: `Leads.all\\n` passed CreateSubscription's regex ending in `$` and
    reached Zoho."""
    await broker.connect()
    if rpc == "EnableCrmChannels":
        channel = notifier_pb2.CrmChannelSpec(channel_id="1001", events=[event],
                                              notify_url="https://hooks.example.com/z")
        await refused(notifier.stub.EnableCrmChannels(notifier_pb2.EnableCrmChannelsRequest(
            user_id="demo", channels=[channel]), timeout=10), "channels[0].events[0]")
    else:
        request = notifier_pb2.CreateSubscriptionRequest(
            user_id="demo", app_type=common_pb2.APP_TYPE_CRM, events=[event])
        await refused(notifier.stub.CreateSubscription(request, timeout=10), "events[0]")
    assert not await sandbox.calls("crm.watch")


def test_one_rule_each_ascii_only_and_whole() -> None:
    for value in UNICODE_DIGITS:
        assert not identifiers.is_desk_id(value)
        assert not identifiers.is_channel_id(value)
        assert not identifiers.is_decimal(value)
    assert identifiers.is_desk_id("123") and identifiers.is_channel_id("1" * 64)
    assert not identifiers.is_module("Leads\n") and identifiers.is_module("Custom_1")
    assert not identifiers.is_subscription_id("sub_" + "0" * 24 + "\n")
    assert not identifiers.is_scope("ZohoCRM.notifications.READ\n")
    assert not identifiers.is_http_url("http://[x")
    assert identifiers.is_http_url("http://127.0.0.1:8765/callback")


@pytest.mark.slow
async def test_a_subscription_id_or_cursor_with_a_trailing_newline_is_refused(
    notifier: NotifierHandle,
) -> None:
    subscription_id = "sub_" + "0" * 24 + "\n"
    get = notifier_pb2.GetSubscriptionRequest(user_id="demo", subscription_id=subscription_id)
    await refused(notifier.stub.GetSubscription(get, timeout=10), "subscription_id")
    for request, field in (
        (notifier_pb2.WatchNotificationsRequest(subscription_id=subscription_id),
         "subscription_id"),
        (notifier_pb2.WatchNotificationsRequest(after_cursor="0" * 16 + "\n"), "after_cursor"),
    ):
        await refused(_drain(notifier.stub.WatchNotifications(request, timeout=10)), field)


def test_one_rule_for_crm_event_names() -> None:
    """What EnableCrmChannels refuses, CreateSubscription refuses too, for the same
    reason; CreateSubscription also refuses modules Zoho does not notify on (issue 23
    item 8)."""
    from notifier import validation as channels
    from notifier.subscriptions import validation as subscriptions
    from servicekit.errors import InvalidArgument

    def verdict(check: object, *args: object, **kwargs: object) -> list[tuple[str, str]]:
        try:
            check(*args, **kwargs)  # type: ignore[operator]
        except InvalidArgument as bad:
            return [(f.rsplit("events", 1)[-1], why) for f, why in bad.violations]
        return []

    for event in ("Leads.all", "CustomModule7.create", "Leads.all\n", "Leads.update",
                  "Lead\u0455.all", "Unicorns.all"):
        spec = notifier_pb2.CrmChannelSpec(
            channel_id="1001", events=[event], notify_url="https://hooks.example.com/z")
        enable = verdict(channels.crm_channels, "demo", [spec], complete=True)
        create = verdict(subscriptions.create_request, notifier_pb2.CreateSubscriptionRequest(
            user_id="demo", app_type=common_pb2.APP_TYPE_CRM, events=[event]))
        assert create == enable or (not enable and event == "Unicorns.all"), (event, create)
    eleven = [f"Leads.all{i}" for i in range(11)]
    assert verdict(subscriptions.create_request, notifier_pb2.CreateSubscriptionRequest(
        user_id="demo", app_type=common_pb2.APP_TYPE_CRM, events=eleven))[0] == (
        "", "at most 10 events (Zoho's limit)")
