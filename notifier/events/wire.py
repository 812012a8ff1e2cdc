"""WatchNotifications writes events as they are stored, already serialized: its
response serializer passes the bytes through (no parse and re-serialize per event).
Pull (notifier/consumers/) writes PullResponses built from the same bytes the same way."""

from __future__ import annotations

from typing import Any

import grpc

from servicekit.services import NOTIFIER_SERVICE_NAME
from zoho.notifier.v1 import notifier_pb2_grpc

WATCH = "WatchNotifications"
PULL = "Pull"


def _as_is(wire: bytes) -> bytes:
    return wire


class _Collected:
    """Stands in for the server to take the generated code's method handlers."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, _handlers: Any) -> None:
        pass  # built again below from the same handlers

    def add_registered_method_handlers(
        self, _service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self.handlers = dict(handlers)


def add_notifier_service(
    servicer: notifier_pb2_grpc.NotifierServiceServicer, server: grpc.aio.Server
) -> None:
    """The generated add_NotifierServiceServicer_to_server, WatchNotifications and Pull
    passing bytes through."""
    collected = _Collected()
    notifier_pb2_grpc.add_NotifierServiceServicer_to_server(servicer, collected)
    handlers = collected.handlers
    watch = handlers[WATCH]
    handlers[WATCH] = grpc.unary_stream_rpc_method_handler(
        watch.unary_stream,
        request_deserializer=watch.request_deserializer,
        response_serializer=_as_is,
    )
    pull = handlers[PULL]
    handlers[PULL] = grpc.stream_stream_rpc_method_handler(
        pull.stream_stream,
        request_deserializer=pull.request_deserializer,
        response_serializer=_as_is,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(NOTIFIER_SERVICE_NAME, handlers),)
    )
    server.add_registered_method_handlers(NOTIFIER_SERVICE_NAME, handlers)
