"""Every RPC of both services, fed hypothesis-generated requests against the real servers.

Injected: huge and odd strings (NUL, controls, unicode, past the 1 MiB message limit),
negative and huge numbers, unknown enum values, forged page tokens, hostile origins.
Asserted: each call ends OK or with a deliberate code (INVALID_ARGUMENT, NOT_FOUND,
FAILED_PRECONDITION, RESOURCE_EXHAUSTED for the size limit, ...) and a status carrying
an ErrorInfo; never INTERNAL or UNKNOWN; afterwards the server still reports SERVING
and still serves a normal call.

The examples are derandomized (the same on every run, as CI needs); set
HYPOTHESIS_FUZZ_EXAMPLES to search longer.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import strategies as gen
from tests.plugins.broker_fixtures import BrokerHandle
from tests.plugins.notifier_fixtures import NotifierHandle
from tests.rpc_errors import seen
from zoho.broker.v1 import broker_pb2
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("HYPOTHESIS_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large, HealthCheck.large_base_example],
)
# Deliberate answers to a bad or unlucky request. Never INTERNAL, UNKNOWN, or a hang.
ALLOWED = {
    grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.UNAVAILABLE,
}


def services(descriptor: Any) -> list[str]:
    return list(descriptor.methods_by_name)


BROKER_METHODS = services(broker_pb2.DESCRIPTOR.services_by_name["TokenBrokerService"])
NOTIFIER_METHODS = services(notifier_pb2.DESCRIPTOR.services_by_name["NotifierService"])


def hints(origin: str) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "user_id": st.one_of(st.just("demo"), gen.text()),
        "page_token": gen.forged_page_token(),
        "accounts_server": gen.origin([origin]),
        "api_domain": gen.origin([origin]),
        "redirect_uri": gen.origin([origin + "/callback"]),
        "notify_url": gen.origin(["https://hooks.example.com/zoho"]),
        "url": gen.origin(["https://hooks.example.com/zoho"]),
        "app_type": st.one_of(st.sampled_from([1, 2]), st.integers(*gen.INT32)),
    }


# Streams that stay open for new events by design: a valid request is still open when
# the caller's deadline ends it, which is the deliberate answer, not a hang.
LIVE_STREAMS = {"WatchNotifications"}
LIVE_STREAM_SECONDS = 1.0


async def call(channel: grpc.aio.Channel, service: str, method: str, request: Any,
               response_cls: type, streaming: bool) -> tuple[grpc.StatusCode, Any]:
    path = f"/{service}/{method}"
    live = method in LIVE_STREAMS
    try:
        if streaming:
            stream = channel.unary_stream(path, request_serializer=type(request).SerializeToString,
                                          response_deserializer=response_cls.FromString)
            async for _ in stream(request, timeout=LIVE_STREAM_SECONDS if live else 15):
                pass
        else:
            unary = channel.unary_unary(path, request_serializer=type(request).SerializeToString,
                                        response_deserializer=response_cls.FromString)
            await unary(request, timeout=15)
    except grpc.aio.AioRpcError as err:
        if live and err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return grpc.StatusCode.OK, None
        return err.code(), err
    return grpc.StatusCode.OK, None


def check(code: grpc.StatusCode, error: Any, method: str, request: Any) -> None:
    assert code in ALLOWED, (method, code, error and error.details(), str(request)[:300])
    if error is not None and code != grpc.StatusCode.RESOURCE_EXHAUSTED:
        # Every deliberate error says why (AIP-193). The message-size limit is
        # gRPC's own answer, before any of our code runs.
        assert seen(error).reason, (method, code, error.details())
    elif error is not None:
        assert seen(error).reason or "larger than max" in (error.details() or "")


async def still_serving(channel: grpc.aio.Channel, service: str, within: float = 3.0) -> None:
    """SERVING now or within a few of the notifier's 0.1 s broker probes: on a loaded
    machine two probes in a row can time out and flip it for a moment. A request that
    broke the service leaves it NOT_SERVING for good, and fails here."""
    loop = asyncio.get_running_loop()
    until = loop.time() + within
    while True:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5)
        if reply.status == health_pb2.HealthCheckResponse.SERVING or loop.time() > until:
            break
        await asyncio.sleep(0.1)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.fixture
async def connected(broker: BrokerHandle) -> BrokerHandle:
    """Once per test, not per example: the sandbox mints 10 tokens per 10 minutes."""
    await broker.connect()
    return broker


@pytest.mark.parametrize("method", BROKER_METHODS)
@FUZZ
@given(data=st.data())
async def test_broker_rpcs_answer_hostile_requests_deliberately(
    connected: BrokerHandle, method: str, data: st.DataObject
) -> None:
    service = broker_pb2.DESCRIPTOR.services_by_name["TokenBrokerService"]
    rpc = service.methods_by_name[method]
    request = data.draw(gen.message(rpc.input_type, getattr(broker_pb2, rpc.input_type.name),
                                    hints(connected.sandbox.origin)))
    code, error = await call(connected.channel, service.full_name, method, request,
                             getattr(broker_pb2, rpc.output_type.name), streaming=False)
    check(code, error, method, request)
    await still_serving(connected.channel, service.full_name)


@pytest.mark.parametrize("method", NOTIFIER_METHODS)
@FUZZ
@given(data=st.data())
async def test_notifier_rpcs_answer_hostile_requests_deliberately(
    connected: BrokerHandle, notifier: NotifierHandle, method: str, data: st.DataObject
) -> None:
    service = notifier_pb2.DESCRIPTOR.services_by_name["NotifierService"]
    rpc = service.methods_by_name[method]
    request = data.draw(gen.message(rpc.input_type, getattr(notifier_pb2, rpc.input_type.name),
                                    hints(connected.sandbox.origin)))
    code, error = await call(notifier.channel, service.full_name, method, request,
                             getattr(notifier_pb2, rpc.output_type.name),
                             streaming=rpc.server_streaming)
    check(code, error, method, request)
    await still_serving(notifier.channel, service.full_name)


async def test_after_hostile_requests_normal_calls_still_work(
    connected: BrokerHandle, notifier: NotifierHandle
) -> None:
    bad = broker_pb2.GetTokenRequest(user_id="\x00" * 300, app_type=-7, min_ttl_seconds=-1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await connected.stub.GetToken(bad, timeout=10)
    assert seen(caught.value).bad_fields == ["user_id", "app_type", "min_ttl_seconds"]
    assert (await connected.stub.GetToken(broker_pb2.GetTokenRequest(user_id="demo"),
                                          timeout=10)).access_token
    items = [n async for n in notifier.stub.ListNotifications(
        notifier_pb2.ListNotificationsRequest(user_id="demo", app_type=common_pb2.APP_TYPE_CRM),
        timeout=20)]
    assert len(items) == 250


async def test_a_message_past_the_size_limit_is_refused_before_any_code_runs(
    broker: BrokerHandle
) -> None:
    request = broker_pb2.GetTokenRequest(user_id="x" * (1024 * 1024 + 1))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await broker.stub.GetToken(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    await still_serving(broker.channel, "zoho.broker.v1.TokenBrokerService")


async def test_an_error_echoing_a_huge_value_still_arrives_whole(
    connected: BrokerHandle, notifier: NotifierHandle
) -> None:
    # Found by the fuzzer: the status echoed 20 000-character field names and outgrew
    # gRPC's 16 KiB trailer limit, so the caller got a bare RESOURCE_EXHAUSTED.
    request = notifier_pb2.UpdateDeskWebhookRequest(
        user_id="demo", webhook_id="1", update_fields=["x" * 20_000] * 40)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifier.stub.UpdateDeskWebhook(request, timeout=10)
    error = seen(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_ARGUMENT"
    assert "update_fields" in error.bad_fields
    assert len(error.message) <= 1000
