"""Prometheus metrics shared by both services (each process has its own registry)."""

from __future__ import annotations

import grpc
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from servicekit.config import ListenAddress, listen_failed

# `reason`: the ErrorInfo reason of the status a call ended with (ZOHO_THROTTLED,
# TOO_MANY_STREAMS, ...), "" without one: the code alone does not tell them apart.
RPCS = Counter("grpc_server_handled_total", "RPCs handled", ["method", "code", "reason"])
RPC_LATENCY = Histogram(
    "grpc_server_handling_seconds",
    "RPC latency",
    ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OPEN_STREAMS = Gauge(
    "grpc_server_open_streams", "Server streams open now (those under stream limits)"
)
# What grpc.health.v1 answers for each service this process serves: 1 SERVING, 0 NOT_SERVING
# (the notifier without a broker, a replica draining). Probes see it; this lets an alert too.
HEALTH_SERVING = Gauge(
    "grpc_health_serving", "1 while the service's health status is SERVING, else 0", ["service"]
)
ZOHO_CALLS = Counter("zoho_http_requests_total", "Calls to Zoho", ["endpoint", "status"])
ZOHO_LATENCY = Histogram("zoho_http_request_seconds", "Latency of calls to Zoho", ["endpoint"])


def observe_rpc(
    method: str, code: grpc.StatusCode | None, seconds: float, reason: str = ""
) -> None:
    RPCS.labels(method, (code or grpc.StatusCode.OK).name, reason).inc()
    RPC_LATENCY.labels(method).observe(seconds)


def observe_zoho(endpoint: str, status: str, seconds: float) -> None:
    ZOHO_CALLS.labels(endpoint, status).inc()
    ZOHO_LATENCY.labels(endpoint).observe(seconds)


def serve_metrics(listen: ListenAddress) -> None:
    """Starts the /metrics endpoint on its own thread (port 0 disables it); an address it
    cannot listen on is a start-up error naming the variable (ConfigError)."""
    if listen.port:
        try:
            start_http_server(listen.port, addr=listen.host)
        except OSError as failed:
            raise listen_failed(listen, failed) from None

INGRESS_DELIVERIES = Counter(
    "notifier_ingress_deliveries_total",
    "Zoho callbacks received by the ingress, by outcome (stored, unverified, malformed, ...)",
    ["app", "outcome"],
)
ACCEPT_FAILURES = Counter(
    "accept_failures_total",
    "Connections the process could not accept (out of file descriptors or memory)",
)
INGRESS_CONNECTIONS = Gauge("notifier_ingress_connections", "Connections open to the ingress")
INGRESS_CONNECTIONS_CLOSED = Counter(
    "notifier_ingress_connections_closed_total",
    "Ingress connections the notifier closed or refused, by why (header_timeout, "
    "idle_timeout, evicted, refused_peer, refused_total)",
    ["reason"],
)
