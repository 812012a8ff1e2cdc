"""BrokerClient against a stand-in broker that records what it received: the caller's
deadline and request id travel on; typed errors pass through unchanged. (The integration
tests use the real broker; this one looks at the wire.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from notifier.broker_client import BrokerClient, BrokerToken
from servicekit.config import ListenAddress
from servicekit.deadline import Deadline
from servicekit.error_status import PassthroughError, to_status
from servicekit.errors import NotConnected, Unavailable, ZohoUnavailable
from servicekit.logs import REQUEST_ID_KEY, request_id
from servicekit.server import GrpcServer, ServiceBinding
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2


class RecordingBroker(broker_pb2_grpc.TokenBrokerServiceServicer):
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.fail_with: grpc.Status | None = None
        self.abort_plain: grpc.StatusCode | None = None
        self.plain_failures_left = -1  # abort_plain on every call; n: on the next n only

    async def _record(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        self.seen.append(
            {
                "request": request,
                "time_remaining": context.time_remaining(),
                "metadata": dict(context.invocation_metadata() or ()),
            }
        )
        if self.fail_with is not None:
            await context.abort_with_status(self.fail_with)
        if self.abort_plain is not None and self.plain_failures_left != 0:
            self.plain_failures_left -= 1
            await context.abort(self.abort_plain, "plain failure")

    async def GetToken(self, request: Any, context: Any) -> broker_pb2.GetTokenResponse:
        await self._record(request, context)
        return broker_pb2.GetTokenResponse(access_token="a1", api_domain="https://www.zohoapis.eu")

    async def RefreshToken(self, request: Any, context: Any) -> broker_pb2.RefreshTokenResponse:
        await self._record(request, context)
        return broker_pb2.RefreshTokenResponse(
            access_token="a2", api_domain="https://www.zohoapis.eu"
        )


@pytest.fixture
async def stand_in() -> AsyncIterator[tuple[RecordingBroker, BrokerClient]]:
    fake = RecordingBroker()
    server = GrpcServer(
        ListenAddress("127.0.0.1", 0),
        [
            ServiceBinding(
                "zoho.broker.v1.TokenBrokerService",
                lambda s: broker_pb2_grpc.add_TokenBrokerServiceServicer_to_server(fake, s),
            )
        ],
    )
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            yield fake, BrokerClient(channel, timeout_cap=30)
    finally:
        await server.stop(0)


async def test_deadline_and_request_id_reach_the_broker(stand_in) -> None:
    fake, client = stand_in
    request_id.set("req-42")
    grant = await client.get_token("demo", common_pb2.APP_TYPE_CRM, Deadline(3))
    await client.refresh_token("demo", common_pb2.APP_TYPE_CRM, grant, Deadline(3))

    for call in fake.seen:
        assert call["metadata"][REQUEST_ID_KEY] == "req-42"
        # The caller's 3 s, not the 30 s cap (gRPC rounds the deadline up a little).
        assert 0 < call["time_remaining"] < 4
    assert fake.seen[1]["request"].rejected_access_token == "a1"


async def test_without_a_caller_deadline_the_cap_applies(stand_in) -> None:
    fake, client = stand_in
    await client.get_token("demo", common_pb2.APP_TYPE_DESK, Deadline.unbounded())
    assert 4 < fake.seen[0]["time_remaining"] < 31


async def test_typed_errors_pass_through_unchanged(stand_in) -> None:
    fake, client = stand_in
    fake.fail_with = to_status(NotConnected("demo"))
    with pytest.raises(PassthroughError) as caught:
        await client.get_token("demo", common_pb2.APP_TYPE_CRM, Deadline(3))
    status = to_status(caught.value)
    assert status.code == grpc.StatusCode.FAILED_PRECONDITION
    assert status.details == fake.fail_with.details
    assert dict(status.trailing_metadata) == dict(fake.fail_with.trailing_metadata)


async def test_a_status_without_a_reason_becomes_backend_unavailable(stand_in) -> None:
    fake, client = stand_in
    fake.abort_plain = grpc.StatusCode.INTERNAL
    with pytest.raises(Unavailable):
        await client.refresh_token(
            "demo", common_pb2.APP_TYPE_CRM, BrokerToken("x", "https://www.zohoapis.eu"),
            Deadline(3),
        )
    assert len(fake.seen) == 1  # INTERNAL is not repeated


async def test_a_replica_failing_a_call_unavailable_is_asked_once_more(stand_in) -> None:
    """A broker replica that dies under a call fails it UNAVAILABLE with no reason; both token
    calls are safe to repeat, and the channel sends the repeat to another replica."""
    fake, client = stand_in
    fake.abort_plain, fake.plain_failures_left = grpc.StatusCode.UNAVAILABLE, 1
    grant = await client.get_token("demo", common_pb2.APP_TYPE_CRM, Deadline(3))
    assert grant.access_token == "a1"
    assert len(fake.seen) == 2
    fake.seen.clear()
    fake.plain_failures_left = -1
    with pytest.raises(Unavailable):
        await client.get_token("demo", common_pb2.APP_TYPE_CRM, Deadline(3))
    assert len(fake.seen) == 2  # once more, not more


async def test_the_brokers_own_zoho_unavailable_is_never_repeated(stand_in) -> None:
    # The broker already retried Zoho within its bounds: asking again would multiply them.
    fake, client = stand_in
    fake.fail_with = to_status(ZohoUnavailable("Zoho failed"))
    with pytest.raises(PassthroughError) as caught:
        await client.get_token("demo", common_pb2.APP_TYPE_CRM, Deadline(3))
    assert to_status(caught.value).code == grpc.StatusCode.UNAVAILABLE
    assert len(fake.seen) == 1
