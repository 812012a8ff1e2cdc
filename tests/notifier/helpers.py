"""Requests, streams and Zoho hooks the notifier's tests share (errors: tests/rpc_errors.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2

CRM = common_pb2.APP_TYPE_CRM
DESK = common_pb2.APP_TYPE_DESK


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
