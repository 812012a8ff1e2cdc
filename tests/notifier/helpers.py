"""What a caller sees of an error: the reason in ErrorInfo, BadRequest fields, RetryInfo."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import grpc
import httpx
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2

CRM = common_pb2.APP_TYPE_CRM
DESK = common_pb2.APP_TYPE_DESK


def status_of(err: grpc.aio.AioRpcError) -> status_pb2.Status:
    status = rpc_status.from_call(cast(Any, err))
    assert status is not None, f"no google.rpc.Status on {err.code()}: {err.details()}"
    return status


def _detail(err: grpc.aio.AioRpcError, kind: Any) -> Any:
    for detail in status_of(err).details:
        if detail.Is(kind.DESCRIPTOR):
            found = kind()
            detail.Unpack(found)
            return found
    return None


def error_info(err: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    info = _detail(err, error_details_pb2.ErrorInfo)
    assert info is not None, f"no ErrorInfo on {err.code()}: {err.details()}"
    return cast(error_details_pb2.ErrorInfo, info)


def reason(err: grpc.aio.AioRpcError) -> str:
    return error_info(err).reason


def bad_fields(err: grpc.aio.AioRpcError) -> set[str]:
    bad = _detail(err, error_details_pb2.BadRequest)
    assert bad is not None, "no BadRequest detail"
    return {v.field for v in bad.field_violations}


def retry_info(err: grpc.aio.AioRpcError) -> error_details_pb2.RetryInfo | None:
    return cast(error_details_pb2.RetryInfo | None, _detail(err, error_details_pb2.RetryInfo))


def list_request(user_id: str = "demo", app_type: int = CRM, **kw: Any) -> Any:
    return notifier_pb2.ListNotificationsRequest(user_id=user_id, app_type=app_type, **kw)


async def collect(stub: Any, request: Any, **kw: Any) -> list[notifier_pb2.Notification]:
    return [item async for item in stub.ListNotifications(request, **kw)]


def crm_keys(items: list[Any]) -> list[tuple[str, str]]:
    """(channel_id, module) of streamed items or of the sandbox's raw watch items."""
    keys = []
    for item in items:
        if isinstance(item, dict):
            keys.append((item["channel_id"], item["resource_name"]))
        else:
            keys.append((item.crm.channel_id, item.crm.resource_name))
    return keys


Hook = Callable[[httpx.Request, int], Awaitable[None]]


def invalidate_token_before_watch_call(sandbox: Any, n: int) -> Hook:
    """A `notifier.http.before` hook: just before the n-th CRM watch request, Zoho forgets
    the access token that request carries (so it is answered 401 INVALID_TOKEN)."""
    seen = 0

    async def hook(request: httpx.Request, _: int) -> None:
        nonlocal seen
        if request.url.path.endswith("/actions/watch"):
            seen += 1
            if seen == n:
                token = request.headers["Authorization"].split(" ", 1)[1]
                assert await sandbox.invalidate_access_token(token)

    return hook


def fail_crm_watch_from_request(sandbox: Any, n: int) -> Hook:
    """A `notifier.http.before` hook: from the n-th Zoho request on, CRM watch answers 500."""
    seen = 0

    async def hook(request: httpx.Request, _: int) -> None:
        nonlocal seen
        seen += 1
        if seen == n:
            await sandbox.fault("crm.watch", "status_500", count=None)

    return hook
