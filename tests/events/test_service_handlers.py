"""The NotifierService's handlers (notifier/service_handlers.py): the generated code's,
WatchNotifications and Pull passing bytes through; and, on a real notifier, the server's
interceptors around WatchNotifications (stream bounds, metrics, malformed requests)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from notifier.app import NotifierApp
from notifier.service_handlers import PASS_THROUGH, add_notifier_service, method_handlers
from servicekit.streams import StreamLimits
from tests.plugins.notifier_fixtures import notifier_config
from tests.rpc_errors import seen
from tests.waiting import until
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

SERVICE = "zoho.notifier.v1.NotifierService"
WATCH = f"/{SERVICE}/WatchNotifications"
KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


class Recording:
    """Takes what an add_..._to_server function gives a server (test only)."""

    def __init__(self) -> None:
        self.generic: list[Any] = []
        self.registered: dict[str, dict[str, grpc.RpcMethodHandler]] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self.registered[service] = handlers


def behaviour(handler: grpc.RpcMethodHandler) -> tuple[object, ...]:
    """What a handler does: its kind, the servicer method behind it, its deserializer."""
    kind = next(k for k in KINDS if getattr(handler, k) is not None)
    return kind, getattr(handler, kind), handler.request_deserializer


def test_every_method_is_served_as_the_generated_code_serves_it() -> None:
    servicer = notifier_pb2_grpc.NotifierServiceServicer()
    generated = Recording()
    notifier_pb2_grpc.add_NotifierServiceServicer_to_server(servicer, generated)
    expected = generated.registered[SERVICE]
    ours = method_handlers(servicer)
    assert set(ours) == set(expected)
    for name, handler in ours.items():
        assert behaviour(handler) == behaviour(expected[name]), name
        if name in PASS_THROUGH:
            assert handler.response_serializer(b"\x0a\x01x") == b"\x0a\x01x"
        else:
            assert handler.response_serializer == expected[name].response_serializer, name


def test_the_handlers_are_added_both_ways_the_generated_code_adds_them() -> None:
    server = Recording()
    add_notifier_service(notifier_pb2_grpc.NotifierServiceServicer(), server)
    registered = server.registered[SERVICE]
    assert set(registered) >= PASS_THROUGH
    # The generic handler answers with the same handler as the registered one, so which
    # grpc.aio asks first (registered, in grpcio 1.85) makes no difference.
    [generic] = server.generic

    class Details(grpc.HandlerCallDetails):
        method = WATCH
        invocation_metadata = ()

    assert generic.service(Details()) is registered["WatchNotifications"]


def handled(code: str) -> float:
    total = 0.0
    for family in REGISTRY.collect():
        for sample in family.samples:
            if (sample.name == "grpc_server_handled_total"
                    and sample.labels.get("method") == WATCH
                    and sample.labels.get("code") == code):
                total += sample.value
    return total


async def test_watch_notifications_goes_through_the_servers_interceptors(sandbox, broker) -> None:
    await broker.connect()
    app = NotifierApp(notifier_config(
        sandbox.origin, broker.address, streams=StreamLimits(50, 1, 30.0, 200)))
    await app.start()
    channel = grpc.aio.insecure_channel(app.server.address)
    try:
        stub = notifier_pb2_grpc.NotifierServiceStub(channel)
        cancelled, refused = handled("CANCELLED"), handled("RESOURCE_EXHAUSTED")
        request = notifier_pb2.WatchNotificationsRequest(user_id="demo")
        first = stub.WatchNotifications(request, timeout=30)
        await first.initial_metadata()  # open: the connection's one stream slot taken
        second = stub.WatchNotifications(request, timeout=30)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in second:
                pass
        error = seen(caught.value)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (error.reason, error.metadata["scope"]) == ("TOO_MANY_STREAMS", "connection")
        first.cancel()
        await until(lambda: handled("CANCELLED") > cancelled)
        assert handled("RESOURCE_EXHAUSTED") > refused
        # Malformed request bytes: INVALID_ARGUMENT naming the request, not UNKNOWN.
        raw = channel.unary_stream(WATCH, request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
        with pytest.raises(grpc.aio.AioRpcError) as malformed:
            async for _ in raw(b"\x0a\x7fabc", timeout=30):
                pass
        assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await channel.close()
        await app.stop(0)
