"""`zoho-health` against grpc_testing's channel (grpcio-testing): what the synchronous
client asks (service, deadline) and how each answer becomes its exit code and its line,
with no server. The operator CLI is an asyncio client (grpc.aio), which grpc_testing's
synchronous channel cannot stand in for: its tests run against a real broker instead."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import grpc_testing
import pytest
from grpc_health.v1 import health_pb2

from servicekit import healthprobe

HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"]
CHECK = HEALTH.methods_by_name["Check"]
ADDRESS = "broker.internal:50051"


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    testing = grpc_testing.channel([HEALTH], grpc_testing.strict_real_time())
    opened: list[tuple[str, object]] = []

    def open_channel(address: str, credentials: object) -> Any:
        opened.append((address, credentials))
        return testing

    monkeypatch.setattr(healthprobe, "open_channel", open_channel)
    yield testing
    assert [address for address, _ in opened] == [ADDRESS]


def answered(channel: Any, args: list[str], code: grpc.StatusCode,
             status: int | None = None) -> tuple[int, Any]:
    """Runs `zoho-health ARGS` on a thread, answers its one Check, returns the exit code
    and the request it sent."""
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(healthprobe.main, args)
        _, request, rpc = channel.take_unary_unary(CHECK)
        reply = health_pb2.HealthCheckResponse(status=status) if status is not None else None
        rpc.terminate(reply, (), code, "" if code == grpc.StatusCode.OK else "down")
        return running.result(timeout=10), request


def test_serving_is_exit_0_and_says_so(channel: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, request = answered(channel, [ADDRESS, "--timeout", "2.5"], grpc.StatusCode.OK,
                             health_pb2.HealthCheckResponse.SERVING)
    assert code == 0
    assert request.service == ""
    assert capsys.readouterr().out.strip() == f"{ADDRESS} (server): SERVING"


def test_a_named_service_not_serving_is_exit_1(
    channel: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    service = "zoho.broker.v1.TokenBrokerService"
    code, request = answered(channel, [ADDRESS, service], grpc.StatusCode.OK,
                             health_pb2.HealthCheckResponse.NOT_SERVING)
    assert (code, request.service) == (1, service)
    assert capsys.readouterr().out.strip() == f"{ADDRESS} {service}: NOT_SERVING"


@pytest.mark.parametrize("failure", [grpc.StatusCode.UNAVAILABLE,
                                     grpc.StatusCode.DEADLINE_EXCEEDED,
                                     grpc.StatusCode.NOT_FOUND])
def test_a_failed_check_is_exit_1_naming_the_code(
    channel: Any, capsys: pytest.CaptureFixture[str], failure: grpc.StatusCode
) -> None:
    code, _ = answered(channel, [ADDRESS], failure)
    assert code == 1
    assert capsys.readouterr().err.strip() == f"{ADDRESS}: {failure.name}"
