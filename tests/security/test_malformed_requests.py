"""Request bytes that are not the request message (invalid UTF-8 in a string field, a
truncated varint, a length running past the end) are INVALID_ARGUMENT with an ErrorInfo
and a BadRequest naming the request, on every RPC of both services; never UNKNOWN with
Python's exception text. Sent through a generic channel with an identity serializer."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor

from tests.rpc_errors import seen
from zoho.broker.v1 import broker_pb2
from zoho.notifier.v1 import notifier_pb2

BROKER = broker_pb2.DESCRIPTOR.services_by_name["TokenBrokerService"]
NOTIFIER = notifier_pb2.DESCRIPTOR.services_by_name["NotifierService"]


def malformed(message: Any) -> dict[str, bytes]:
    """Payloads that fail to parse as `message`, by kind."""
    cases = {
        "truncated varint": b"\x08\xff\xff",  # field 1, varint, continuation bits to the end
        "length past the end": b"\x0a\x7fabc",  # field 1, 127 bytes announced, 3 sent
    }
    strings = [f for f in message.fields if f.type == FieldDescriptor.TYPE_STRING]
    if strings:
        tag = bytes([(strings[0].number << 3) | 2]) if strings[0].number < 16 else None
        if tag is not None:
            cases["invalid UTF-8 in a string"] = tag + b"\x03\xff\xfe\xfd"
    return cases


def cases(service: Any) -> list[Any]:
    return [
        pytest.param(method, kind, payload, id=f"{method.name}-{kind}")
        for method in service.methods
        for kind, payload in malformed(method.input_type).items()
    ]


async def answer(channel: grpc.aio.Channel, service: Any, method: Any, payload: bytes):
    path = f"/{service.full_name}/{method.name}"
    identity = (lambda raw: raw)  # noqa: E731
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        if method.server_streaming:
            call = channel.unary_stream(path, request_serializer=identity,
                                        response_deserializer=identity)
            async for _ in call(payload, timeout=10):
                pass
        else:
            call = channel.unary_unary(path, request_serializer=identity,
                                       response_deserializer=identity)
            await call(payload, timeout=10)
    return seen(failed.value)


def check(error: Any, method: Any) -> None:
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT, (method.name, error)
    assert error.reason == "INVALID_ARGUMENT"
    assert error.bad_fields == ["request"]
    assert method.input_type.full_name in error.message
    assert "Error parsing" not in error.message  # no Python exception text


@pytest.mark.parametrize(("method", "kind", "payload"), cases(BROKER))
async def test_broker_answers_malformed_protobuf_invalid_argument(
    broker, method: Any, kind: str, payload: bytes
) -> None:
    check(await answer(broker.channel, BROKER, method, payload), method)


@pytest.mark.slow
@pytest.mark.parametrize(("method", "kind", "payload"), cases(NOTIFIER))
async def test_notifier_answers_malformed_protobuf_invalid_argument(
    notifier, method: Any, kind: str, payload: bytes
) -> None:
    check(await answer(notifier.channel, NOTIFIER, method, payload), method)
