"""One gRPC server bootstrap for both services.

grpc.aio on the running event loop, reflection, grpc.health.v1 with a status
per service name, a request id (and metrics) on every call, and a shutdown that
turns health NOT_SERVING before it stops taking calls, so load balancers drain
first. What each call goes through is in calls.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from servicekit import tracing
from servicekit.calls import RequestContextInterceptor
from servicekit.config import ListenAddress, check_bindable, listen_failed
from servicekit.metrics import HEALTH_SERVING
from servicekit.streams import StreamLimits

log = logging.getLogger(__name__)

# Requests are small; a cap keeps a hostile client from making us buffer megabytes.
MAX_RECEIVE_MESSAGE_BYTES = 1 * 1024 * 1024


@dataclass(frozen=True)
class ServiceBinding:
    """A servicer to serve under its full name (e.g. zoho.broker.v1.TokenBrokerService)."""

    name: str
    add_to_server: Callable[[grpc.aio.Server], None]


class GrpcServer:
    def __init__(
        self,
        listen: ListenAddress,
        services: Iterable[ServiceBinding],
        *,
        credentials: grpc.ServerCredentials | None = None,
        grace_seconds: float = 5.0,
        interceptors: Iterable[grpc.aio.ServerInterceptor] = (),
        stream_limits: StreamLimits | None = None,
    ) -> None:
        """`interceptors` run inside the request-context one (e.g. the broker's caller policy);
        `stream_limits` bound the server streams of `services` (servicekit/streams.py)."""
        self.listen = listen
        self.services = list(services)
        self.credentials = credentials
        self.interceptors = list(interceptors)
        self.grace_seconds = grace_seconds
        self.calls = RequestContextInterceptor(stream_limits, [s.name for s in self.services])
        self.health = health.aio.HealthServicer()
        self.server: grpc.aio.Server | None = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"{self.listen.host}:{self.port}"

    async def start(self) -> str:
        server = grpc.aio.server(
            interceptors=[self.calls, *tracing.server_interceptors(), *self.interceptors],
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_BYTES),
                *self._stream_options(),
            ],
        )
        for service in self.services:
            service.add_to_server(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            [s.name for s in self.services] + [health.SERVICE_NAME, reflection.SERVICE_NAME],
            server,
        )
        bind = self.listen.bind
        check_bindable(self.listen)
        try:
            if self.credentials is None:
                self.port = server.add_insecure_port(bind)
            else:
                self.port = server.add_secure_port(bind, self.credentials)
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            raise listen_failed(self.listen)
        await server.start()
        self.server = server
        for service in self.services:
            await self.set_serving(service.name, True)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        return self.address

    def _stream_options(self) -> list[tuple[str, int]]:
        """HTTP/2's own cap on a connection's streams, above the per-connection stream
        cap: room for unary calls beside the streams, and a bound on the streams a stalled
        reader leaves behind (ended for us, but held by the transport until its
        connection closes, since their status cannot be sent)."""
        if self.calls.limits is None:
            return []
        per_peer = self.calls.limits.max_streams_per_peer
        return [("grpc.max_concurrent_streams", 2 * per_peer)]

    async def set_serving(self, service_name: str, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self.health.set(service_name, status)
        HEALTH_SERVING.labels(service_name).set(1 if serving else 0)

    async def stop(self, grace: float | None = None) -> None:
        if self.server is None:
            return
        # NOT_SERVING first, so health checkers stop routing to us while calls drain.
        await self.health.enter_graceful_shutdown()
        for service in self.services:
            HEALTH_SERVING.labels(service.name).set(0)
        await self.server.stop(self.grace_seconds if grace is None else grace)
        self.server = None

