"""Reading the google.rpc.Status a service sent, as callers and grpcurl see it: the one
module the tests read errors with. `seen` gathers everything at once; `reason`,
`error_info`, `bad_fields` and `retry_info` each read one detail (and assert it is there)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status


@dataclass
class SeenError:
    code: grpc.StatusCode
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    bad_fields: list[str] = field(default_factory=list)
    retry_seconds: float | None = None


def seen(error: grpc.aio.AioRpcError) -> SeenError:
    status: status_pb2.Status | None = rpc_status.from_call(error)  # type: ignore[arg-type]
    return _read(SeenError(error.code(), error.details() or ""), status)


def seen_trailer(status_details: bytes) -> SeenError:
    """The same, from the raw `grpc-status-details-bin` trailer a raw HTTP/2 client got."""
    status = status_pb2.Status.FromString(status_details)
    code = next((c for c in grpc.StatusCode if c.value[0] == status.code),
                grpc.StatusCode.UNKNOWN)
    return _read(SeenError(code, status.message), status)


def _read(result: SeenError, status: status_pb2.Status | None) -> SeenError:
    if status is None:
        return result
    info = _unpack(status, error_details_pb2.ErrorInfo)
    if info is not None:
        result.reason, result.metadata = info.reason, dict(info.metadata)
    bad = _unpack(status, error_details_pb2.BadRequest)
    if bad is not None:
        result.bad_fields = [v.field for v in bad.field_violations]
    retry = _unpack(status, error_details_pb2.RetryInfo)
    if retry is not None:
        result.retry_seconds = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
    return result


def status_of(err: grpc.aio.AioRpcError) -> status_pb2.Status:
    status = rpc_status.from_call(cast(Any, err))
    assert status is not None, f"no google.rpc.Status on {err.code()}: {err.details()}"
    return status


def _unpack(status: status_pb2.Status, kind: Any) -> Any:
    for detail in status.details:
        if detail.Is(kind.DESCRIPTOR):
            found = kind()
            detail.Unpack(found)
            return found
    return None


def error_info(err: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    info = _unpack(status_of(err), error_details_pb2.ErrorInfo)
    assert info is not None, f"no ErrorInfo on {err.code()}: {err.details()}"
    return cast(error_details_pb2.ErrorInfo, info)


def reason(err: grpc.aio.AioRpcError) -> str:
    return error_info(err).reason


def bad_fields(err: grpc.aio.AioRpcError) -> set[str]:
    bad = _unpack(status_of(err), error_details_pb2.BadRequest)
    assert bad is not None, "no BadRequest detail"
    return {v.field for v in bad.field_violations}


def retry_info(err: grpc.aio.AioRpcError) -> error_details_pb2.RetryInfo | None:
    return cast(error_details_pb2.RetryInfo | None,
                _unpack(status_of(err), error_details_pb2.RetryInfo))
