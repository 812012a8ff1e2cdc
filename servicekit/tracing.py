"""OpenTelemetry traces across the services, off unless configured.

On when the standard variables name an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) and neither `OTEL_SDK_DISABLED=true` nor
`OTEL_TRACES_EXPORTER=none` turns it off; `OTEL_EXPORTER_OTLP_PROTOCOL` picks `grpc` (the
default) or `http/protobuf`, and the exporter reads its other `OTEL_EXPORTER_OTLP_*`
settings (headers, certificates, timeout) itself. `OTEL_SERVICE_NAME` overrides the service's
name. Off, nothing here is installed: no interceptor, no transport wrapper, no cost per call.

On, a trace runs from a caller's RPC (W3C `traceparent` in its metadata, if it sends one)
through the server span of each service, the notifier's client span for its broker call
(which carries the context on), and a span per HTTP request to Zoho. Attributes are the RPC's
service, method and status, the request id, and an HTTP request's method, host, port, path
and status: never a header, a query string, a body, or so a token or secret.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import grpc
import httpx
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from servicekit.logs import request_id

REQUEST_ID_ATTRIBUTE = "zoho.request_id"
_provider: TracerProvider | None = None


def configured(environ: Mapping[str, str]) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() not in ("otlp", ""):
        return False
    return bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def _otlp_exporter(environ: Mapping[str, str]) -> SpanExporter:
    protocol = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc").strip().lower()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )
        return HttpExporter()
    from servicekit.config import ConfigError
    raise ConfigError("OTEL_EXPORTER_OTLP_PROTOCOL", f"grpc or http/protobuf, got {protocol!r}")


def setup(service: str, *, exporter: SpanExporter | None = None,
          environ: Mapping[str, str] = os.environ) -> bool:
    """Turns tracing on if configured (or, for tests, with `exporter`, sending each span as it
    ends). Call before building the service's servers and clients. Returns whether it is on."""
    global _provider
    if exporter is None and not configured(environ):
        return False
    name = environ.get("OTEL_SERVICE_NAME") or service
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    if exporter is None:
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(environ)))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    _provider = provider
    return True


def shutdown() -> None:
    """Sends what is buffered and turns tracing off."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


def enabled() -> bool:
    return _provider is not None


def _tracer() -> trace.Tracer:
    assert _provider is not None
    return _provider.get_tracer("zoho-connect")


def _rpc_attributes(full_method: str) -> dict[str, str]:
    service, _, method = full_method.lstrip("/").rpartition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method,
            REQUEST_ID_ATTRIBUTE: request_id.get()}


def _record_code(span: trace.Span, code: grpc.StatusCode | None) -> None:
    code = code or grpc.StatusCode.OK
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code != grpc.StatusCode.OK:
        span.set_status(StatusCode.ERROR, code.name)


class _ServerSpans(grpc.aio.ServerInterceptor):
    """A SERVER span per call, a child of the caller's context; runs inside the request-id
    interceptor, so the call's (sanitized) request id is set."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or _provider is None:
            return handler
        parent = propagate.extract(dict(details.invocation_metadata or ()))
        name = details.method.lstrip("/")

        @contextmanager
        def span(ctx: grpc.aio.ServicerContext) -> Iterator[None]:
            with _tracer().start_as_current_span(
                name, context=parent, kind=SpanKind.SERVER, attributes=_rpc_attributes(name),
                record_exception=False, set_status_on_exception=False,
            ) as current:
                try:
                    yield
                finally:
                    _record_code(current, ctx.code())

        if handler.unary_unary:
            inner_unary = handler.unary_unary

            async def unary(req: Any, ctx: grpc.aio.ServicerContext) -> Any:
                with span(ctx):
                    return await inner_unary(req, ctx)

            return grpc.unary_unary_rpc_method_handler(
                unary, handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream:
            inner_stream = handler.unary_stream

            async def stream(req: Any, ctx: grpc.aio.ServicerContext) -> None:
                with span(ctx):
                    result = inner_stream(req, ctx)
                    if hasattr(result, "__aiter__"):
                        async for item in result:
                            await ctx.write(item)
                    else:
                        await result

            return grpc.unary_stream_rpc_method_handler(
                stream, handler.request_deserializer, handler.response_serializer)
        return handler


def server_interceptors() -> list[grpc.aio.ServerInterceptor]:
    return [_ServerSpans()] if _provider is not None else []


@contextmanager
def client_span(full_method: str) -> Iterator[tuple[tuple[str, str], ...]]:
    """A CLIENT span around an outgoing call; yields the metadata that carries it on."""
    if _provider is None:
        yield ()
        return
    with _tracer().start_as_current_span(
        full_method, kind=SpanKind.CLIENT, attributes=_rpc_attributes(full_method),
        record_exception=False, set_status_on_exception=False,
    ) as current:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        try:
            yield tuple(carrier.items())
        except grpc.aio.AioRpcError as err:
            _record_code(current, err.code())
            raise
        _record_code(current, grpc.StatusCode.OK)


class _TracedTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        attributes: dict[str, str | int] = {
            "http.request.method": request.method, "url.scheme": url.scheme,
            "server.address": url.host, "url.path": url.path,
            "server.port": url.port or (443 if url.scheme == "https" else 80),
        }
        with _tracer().start_as_current_span(
            f"{request.method} {url.path}", kind=SpanKind.CLIENT, attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        ) as current:
            try:
                response = await self._inner.handle_async_request(request)
            except httpx.HTTPError as err:
                current.set_status(StatusCode.ERROR, type(err).__name__)
                raise
            current.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                current.set_status(StatusCode.ERROR)
            return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def traced_transport(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
    """`inner`, with a CLIENT span per request when tracing is on."""
    return _TracedTransport(inner) if _provider is not None else inner
