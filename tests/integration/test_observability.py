"""What an operator watches: Prometheus series per service, and a request id that follows a
call from the notifier into the broker's JSON logs."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandbox.control.client import SandboxControl
from tests.integration.stack import Stack
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

GET_TOKEN = "/zoho.broker.v1.TokenBrokerService/GetToken"
LIST = "/zoho.notifier.v1.NotifierService/ListNotifications"

Labels = tuple[tuple[str, str], ...]


def scrape(urls: list[str]) -> Counter[tuple[str, Labels]]:
    """Every sample, summed over `urls` (the broker replicas), keyed by name and labels."""
    samples: Counter[tuple[str, Labels]] = Counter()
    for url in urls:
        response = httpx.get(url, timeout=10)
        response.raise_for_status()
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] += sample.value
    return samples


def total(
    samples: Counter[tuple[str, Labels]], name: str, **labels: str
) -> float:
    return sum(
        value for (sample_name, sample_labels), value in samples.items()
        if sample_name == name and set(labels.items()) <= set(sample_labels)
    )


def grown(before: Counter[tuple[str, Labels]], after: Counter[tuple[str, Labels]]
          ) -> Callable[..., float]:
    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)
    return delta


async def test_metrics_count_rpcs_refreshes_cache_hits_and_zoho_calls(
    stack: Stack,
    demo_connection: broker_pb2.Connection,
    brokers: list[broker_pb2_grpc.TokenBrokerServiceStub],
    notifier: notifier_pb2_grpc.NotifierServiceStub,
    control: SandboxControl,
) -> None:
    if not stack.broker_metrics_urls or not stack.notifier_metrics_url:
        pytest.skip("no metrics URLs given (INTEGRATION_*_METRICS_URL[S])")
    broker_a, broker_b = brokers
    user = f"short-{uuid.uuid4().hex[:8]}"
    # A first token that lives 60 s: inside the 120 s refresh window, so GetToken refreshes.
    refresh_token = await control.add_refresh_token(user=user, lifetimes=[60, 3600])
    broker_before = scrape(stack.broker_metrics_urls)
    notifier_before = scrape([stack.notifier_metrics_url])

    await broker_a.CreateConnection(broker_pb2.CreateConnectionRequest(
        user_id=user, accounts_server=stack.sandbox_origin, api_domain=stack.sandbox_origin,
        refresh_token=refresh_token,
    ), timeout=15)
    request = broker_pb2.GetTokenRequest(user_id=user, app_type=common_pb2.APP_TYPE_CRM)
    refreshed = await broker_b.GetToken(request, timeout=15)
    again = await broker_b.GetToken(request, timeout=15)
    assert refreshed.access_token == again.access_token
    assert await control.mint_count(refresh_token) == 2
    stream = notifier.ListNotifications(notifier_pb2.ListNotificationsRequest(
        user_id="demo", app_type=common_pb2.APP_TYPE_CRM), timeout=30)
    assert len([item async for item in stream]) == 250

    broker = grown(broker_before, scrape(stack.broker_metrics_urls))
    assert broker("grpc_server_handled_total", method=GET_TOKEN, code="OK") >= 2
    assert broker("grpc_server_handling_seconds_count", method=GET_TOKEN) >= 2
    assert broker("grpc_server_handling_seconds_bucket", method=GET_TOKEN, le="+Inf") >= 2
    assert broker("broker_refreshes_total", outcome="success") == 1
    assert broker("broker_token_cache_total", source="memory") >= 1
    # The import and the refresh: two calls to the token endpoint, both 200.
    assert broker("zoho_http_requests_total", endpoint="token", status="200") == 2

    listed = grown(notifier_before, scrape([stack.notifier_metrics_url]))
    assert listed("grpc_server_handled_total", method=LIST, code="OK") == 1
    assert listed("grpc_server_handling_seconds_count", method=LIST) == 1
    # 250 items at Zoho's 200 a page: two pages.
    assert listed("zoho_http_requests_total", status="200") == 2


def _json_lines(text: str) -> list[dict[str, object]]:
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


async def test_the_request_id_goes_from_the_notifier_into_the_broker_logs(
    stack: Stack, notifier: notifier_pb2_grpc.NotifierServiceStub
) -> None:
    if not stack.local or stack.notifier is None:
        pytest.skip("reads the processes' logs: only the local launcher has them")
    request_id = f"abc123-{uuid.uuid4().hex[:8]}"
    stream = notifier.ListNotifications(
        notifier_pb2.ListNotificationsRequest(
            user_id=f"nobody-{uuid.uuid4().hex[:8]}", app_type=common_pb2.APP_TYPE_CRM
        ),
        metadata=(("x-request-id", request_id),),
        timeout=10,
    )
    with pytest.raises(grpc.aio.AioRpcError):
        async for _ in stream:
            pass

    def lines_with_id() -> list[dict[str, object]]:
        every = [*stack.brokers, stack.notifier]
        return [e for p in every if p for e in _json_lines(p.stderr)
                if e.get("request_id") == request_id]

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and {e["service"] for e in lines_with_id()} != {
        "broker", "notifier"
    }:
        time.sleep(0.05)
    found = lines_with_id()
    assert {entry["service"] for entry in found} == {"broker", "notifier"}
    broker_lines = [entry for entry in found if entry["service"] == "broker"]
    assert any("NOT_CONNECTED" in str(entry["msg"]) for entry in broker_lines)


async def test_the_notifier_spreads_its_broker_calls_over_both_replicas(
    stack: Stack, notifier: notifier_pb2_grpc.NotifierServiceStub
) -> None:
    if len(stack.broker_metrics_urls) < 2:
        pytest.skip("needs each replica's metrics URL")

    def per_replica() -> list[float]:
        return [total(scrape([url]), "grpc_server_handled_total", method=GET_TOKEN)
                for url in stack.broker_metrics_urls]

    before = per_replica()
    for _ in range(10):
        stream = notifier.ListNotifications(notifier_pb2.ListNotificationsRequest(
            user_id=f"nobody-{uuid.uuid4().hex[:8]}", app_type=common_pb2.APP_TYPE_CRM),
            timeout=10)
        with pytest.raises(grpc.aio.AioRpcError):
            async for _ in stream:
                pass
    calls = [after - was for after, was in zip(per_replica(), before, strict=True)]
    assert sum(calls) == 10
    assert min(calls) >= 3, calls
