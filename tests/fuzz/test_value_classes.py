"""Each hostile value class of issue 11 item 3, in an otherwise valid request.

test_rpc_fuzz.py draws whole requests, which are nearly always refused for some other
field first; the values that reached code past validation (and turned INTERNAL) sat in
requests valid in every other field. So here one field at a time takes the class's
values: malformed URLs, page tokens decoding to lone surrogates or NUL, Timestamps
outside their range. Asserted: never INTERNAL or UNKNOWN; a refusal names that field.
"""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import timestamp_pb2
from hypothesis import given
from hypothesis import strategies as st

from servicekit import identifiers
from servicekit.validation import MAX_TIMESTAMP_SECONDS, MIN_TIMESTAMP_SECONDS
from tests.fuzz import strategies as gen
from tests.fuzz.test_rpc_fuzz import FUZZ
from tests.plugins.broker_fixtures import BrokerHandle
from tests.plugins.notifier_fixtures import NotifierHandle
from tests.rpc_errors import seen
from zoho.broker.v1 import broker_pb2
from zoho.notifier.v1 import notifier_pb2

pytestmark = pytest.mark.fuzz


@pytest.fixture
async def connected(broker: BrokerHandle) -> BrokerHandle:
    await broker.connect()
    return broker


async def outcome(call: object) -> tuple[grpc.StatusCode, list[str]]:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        error = seen(err)
        assert error.reason, (err.code(), err.details())
        return err.code(), error.bad_fields
    return grpc.StatusCode.OK, []


def deliberate(code: grpc.StatusCode) -> None:
    assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), code


@FUZZ
@given(url=gen.malformed_url())
async def test_create_connection_with_a_malformed_redirect_uri(
    connected: BrokerHandle, url: str
) -> None:
    code, fields = await outcome(connected.stub.CreateConnection(
        broker_pb2.CreateConnectionRequest(
            user_id="demo", accounts_server=connected.sandbox.origin,
            authorization_code="1000.code.value", redirect_uri=url), timeout=10))
    deliberate(code)
    if not identifiers.is_http_url(url):
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "redirect_uri" in fields


@FUZZ
@given(token=gen.forged_page_token())
async def test_list_connections_with_a_forged_page_token(
    connected: BrokerHandle, token: str
) -> None:
    code, fields = await outcome(connected.stub.ListConnections(
        broker_pb2.ListConnectionsRequest(page_token=token), timeout=10))
    deliberate(code)
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT)
    if code != grpc.StatusCode.OK:
        assert fields == ["page_token"]


def _in_range(seconds: int, nanos: int) -> bool:
    return MIN_TIMESTAMP_SECONDS <= seconds <= MAX_TIMESTAMP_SECONDS and 0 <= nanos < 10**9


@FUZZ
@given(stamp=gen.timestamp_fields(),
       method=st.sampled_from(["EnableCrmChannels", "ReplaceCrmChannels", "UpdateCrmChannels"]))
async def test_crm_writes_with_any_channel_expiry(
    connected: BrokerHandle, notifier: NotifierHandle, stamp: tuple[int, int], method: str
) -> None:
    seconds, nanos = stamp
    channel = notifier_pb2.CrmChannelSpec(
        channel_id="1001", events=["Leads.create"], notify_url="https://hooks.example.com/z",
        channel_expiry=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos))
    request = getattr(notifier_pb2, f"{method}Request")(user_id="demo", channels=[channel])
    code, fields = await outcome(getattr(notifier.stub, method)(request, timeout=15))
    deliberate(code)
    if not _in_range(seconds, nanos):
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert fields == ["channels[0].channel_expiry"]


@FUZZ
@given(url=gen.malformed_url())
async def test_notify_and_webhook_urls_of_the_malformed_kind(
    connected: BrokerHandle, notifier: NotifierHandle, url: str
) -> None:
    channel = notifier_pb2.CrmChannelSpec(channel_id="1001", events=["Leads.create"],
                                          notify_url=url)
    code, fields = await outcome(notifier.stub.EnableCrmChannels(
        notifier_pb2.EnableCrmChannelsRequest(user_id="demo", channels=[channel]), timeout=15))
    deliberate(code)
    if not identifiers.is_http_url(url):
        assert fields == ["channels[0].notify_url"]
    webhook = notifier_pb2.DeskWebhookSpec(name="w", url=url, subscriptions=["Ticket_Add"])
    code, fields = await outcome(notifier.stub.CreateDeskWebhook(
        notifier_pb2.CreateDeskWebhookRequest(user_id="demo", webhook=webhook), timeout=15))
    deliberate(code)
    if not identifiers.is_http_url(url):
        assert fields == ["webhook.url"]
