"""Tracing across the services: one trace from a caller's ListNotifications through the
notifier, its GetToken at the broker, the broker's refresh at Zoho and each Zoho page, all
real servers (sandbox, broker, notifier) with spans kept by an in-memory exporter; the
parent/child links, the request id, and no secret in any attribute. And the OTLP exporter,
configured by the standard variables, delivers to a collector."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from opentelemetry import propagate
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from notifier.app import NotifierApp
from sandbox.control.client import SandboxControl
from sandbox.demo.tenant import DEMO_CLIENT_SECRET, DEMO_REFRESH_TOKEN
from servicekit import tracing
from servicekit.logs import REQUEST_ID_KEY
from tests.plugins.broker_fixtures import TEST_KEY, MakeBroker, ManualClock
from tests.plugins.notifier_fixtures import notifier_config
from zoho.broker.v1 import broker_pb2
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

LIST = "zoho.notifier.v1.NotifierService/ListNotifications"
GET_TOKEN = "zoho.broker.v1.TokenBrokerService/GetToken"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.setup("zoho-test", exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown()


def one(found: list[ReadableSpan], name: str, kind: SpanKind) -> ReadableSpan:
    matching = [s for s in found if s.name == name and s.kind == kind]
    assert len(matching) == 1, (name, kind, [(s.name, s.kind) for s in found])
    return matching[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


@pytest.mark.slow
async def test_one_trace_from_the_caller_to_each_zoho_page(
    spans: InMemorySpanExporter, make_broker: MakeBroker, sandbox: SandboxControl,
) -> None:
    clock = ManualClock()
    broker = await make_broker(clock=clock)
    await broker.connect()
    clock.advance(7200)  # the stored token has expired: GetToken refreshes at Zoho first
    app = NotifierApp(notifier_config(sandbox.origin, broker.address))
    address = await app.start()
    spans.clear()
    try:
        with tracing._tracer().start_as_current_span("caller") as caller:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            async with grpc.aio.insecure_channel(address) as channel:
                stream = notifier_pb2_grpc.NotifierServiceStub(channel).ListNotifications(
                    notifier_pb2.ListNotificationsRequest(
                        user_id="demo", app_type=common_pb2.APP_TYPE_CRM),
                    metadata=(*carrier.items(), (REQUEST_ID_KEY, "trace-me-1")), timeout=30,
                )
                items = [item async for item in stream]
    finally:
        await app.stop(0)
    assert len(items) == 250  # two CRM pages of at most 200
    token = await broker.stub.GetToken(broker_pb2.GetTokenRequest(user_id="demo"), timeout=10)

    found = list(spans.get_finished_spans())
    assert caller.get_span_context().trace_id != 0
    in_trace = [s for s in found if s.context and
                s.context.trace_id == caller.get_span_context().trace_id]
    listing = one(in_trace, LIST, SpanKind.SERVER)
    asked = one(in_trace, GET_TOKEN, SpanKind.CLIENT)
    answered = one(in_trace, GET_TOKEN, SpanKind.SERVER)
    refresh = one(in_trace, "POST /oauth/v2/token", SpanKind.CLIENT)
    pages = [s for s in in_trace if s.name == "GET /crm/v8/actions/watch"]
    assert parent_of(listing) == caller.get_span_context().span_id
    assert parent_of(asked) == span_id(listing)
    assert parent_of(answered) == span_id(asked)  # carried over gRPC metadata
    assert parent_of(refresh) == span_id(answered)
    assert len(pages) == 2 and all(parent_of(p) == span_id(listing) for p in pages)
    assert {s.attributes.get(tracing.REQUEST_ID_ATTRIBUTE)  # type: ignore[union-attr]
            for s in (listing, asked, answered)} == {"trace-me-1"}
    assert listing.attributes["rpc.grpc.status_code"] == 0  # type: ignore[index]
    assert refresh.attributes["http.response.status_code"] == 200  # type: ignore[index]
    assert {p.attributes["http.response.status_code"] for p in pages} == {200}  # type: ignore[index]

    secrets = (token.access_token, DEMO_REFRESH_TOKEN, DEMO_CLIENT_SECRET, TEST_KEY.split(":")[1])
    for span in found:
        for key, value in (span.attributes or {}).items():
            text = f"{key}={value}".lower()
            assert not any(secret.lower() in text for secret in secrets), (span.name, key)
            assert "authorization" not in text and "zoho-oauthtoken" not in text, (span.name, key)
            assert "?" not in str(value) or key != "url.path"


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.names: list[str] = []

    def Export(self, request: Any, context: Any) -> Any:
        for resource_spans in request.resource_spans:
            for scope in resource_spans.scope_spans:
                self.names += [span.name for span in scope.spans]
        return trace_service_pb2.ExportTraceServiceResponse()


def test_off_unless_an_otlp_endpoint_is_configured() -> None:
    assert not tracing.configured({})
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}
    assert tracing.configured(endpoint)
    assert tracing.configured({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317"})
    assert not tracing.configured({**endpoint, "OTEL_SDK_DISABLED": "true"})
    assert not tracing.configured({**endpoint, "OTEL_TRACES_EXPORTER": "none"})
    assert not tracing.setup("zoho-test", environ={})
    assert not tracing.enabled() and tracing.server_interceptors() == []


@pytest.mark.slow
def test_the_otlp_exporter_delivers_to_a_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    collector = _Collector()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
        assert tracing.setup("zoho-test")
        with tracing._tracer().start_as_current_span("sent-to-the-collector"):
            pass
        tracing.shutdown()  # flushes the batch
        assert collector.names == ["sent-to-the-collector"]
    finally:
        tracing.shutdown()
        server.stop(0)
