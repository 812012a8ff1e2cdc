"""The NotifierService's method handlers, through grpcio's public API: the generated
servicer's methods, WatchNotifications and Pull writing bytes as they are (their
responses are built from the stored events already serialized, notifier/events/wire.py).

Why not the generated add_NotifierServiceServicer_to_server beside a generic handler
for those two: it registers every method as a registered method too, and grpc.aio looks
a call's method up among registered handlers before any generic handler (grpcio 1.85,
`_MethodResolver.resolve_handler`), so the generic one would never be asked for them.
So every handler is made here from the service's descriptor, as the generated code
makes them, and added both ways as it adds them. The server's interceptors (servicekit/
calls.py: request id, malformed requests, stream bounds, metrics) wrap whatever
handler the lookup returns, so they apply to these as to any other method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message_factory import GetMessageClass

from servicekit.services import NOTIFIER_SERVICE_NAME
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

SERVICE = notifier_pb2.DESCRIPTOR.services_by_name["NotifierService"]
# Methods whose servicer writes serialized responses itself.
PASS_THROUGH = frozenset({"WatchNotifications", "Pull"})

_KINDS: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _as_is(wire: bytes) -> bytes:
    return wire


def _handler(servicer: Any, method: MethodDescriptor) -> grpc.RpcMethodHandler:
    make = _KINDS[(method.client_streaming, method.server_streaming)]
    response = GetMessageClass(method.output_type)
    return make(
        getattr(servicer, method.name),
        request_deserializer=GetMessageClass(method.input_type).FromString,
        response_serializer=(
            _as_is if method.name in PASS_THROUGH else response.SerializeToString
        ),
    )


def method_handlers(
    servicer: notifier_pb2_grpc.NotifierServiceServicer,
) -> dict[str, grpc.RpcMethodHandler]:
    """Each of the service's methods by name, served by `servicer`."""
    return {method.name: _handler(servicer, method) for method in SERVICE.methods}


def add_notifier_service(
    servicer: notifier_pb2_grpc.NotifierServiceServicer, server: grpc.aio.Server
) -> None:
    handlers = method_handlers(servicer)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(NOTIFIER_SERVICE_NAME, handlers),)
    )
    server.add_registered_method_handlers(NOTIFIER_SERVICE_NAME, handlers)
