"""Small HTTP helpers shared by the Zoho-facing handlers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from sandbox.counters import CallRecord
from sandbox.demo.tenant import DemoSizes
from sandbox.state import SandboxState

STATE_KEY = web.AppKey("sandbox_state", SandboxState)
DEMO_SIZES_KEY = web.AppKey("demo_sizes", DemoSizes)
RECORD_KEY = web.RequestKey("sandbox_call_record", CallRecord)
OAUTH_PREFIX = "Zoho-oauthtoken "


def state_of(request: web.Request) -> SandboxState:
    return request.app[STATE_KEY]


def record_of(request: web.Request) -> CallRecord | None:
    return request.get(RECORD_KEY)


def oauth_token(request: web.Request) -> str | None:
    """The token after `Zoho-oauthtoken ` in Authorization, or None."""
    header = request.headers.get("Authorization")
    if not header or not header.startswith(OAUTH_PREFIX):
        return None
    return header[len(OAUTH_PREFIX) :].strip() or None


def request_origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def public_origin(request: web.Request) -> str:
    """The origin the sandbox calls itself: the bound address, or the Host header when bound
    to a wildcard address that a client could not call."""
    state = state_of(request)
    host = state.origin.split("://", 1)[-1].rsplit(":", 1)[0]
    if host in ("0.0.0.0", "[::]", "::"):  # noqa: S104 - comparing, not binding
        return request_origin(request)
    return state.origin


def json_response(body: Any, status: int = 200) -> web.Response:
    # Compact separators: smaller bodies for the benchmark, same JSON.
    return web.Response(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
        charset="utf-8",
    )


class BadJson(ValueError):
    pass


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise BadJson("empty body")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadJson(str(exc)) from None


async def read_params(request: web.Request) -> dict[str, str]:
    """Query string and form body merged, the body winning: Zoho's examples use the query
    string, its SDK posts a form."""
    params = dict(request.query)
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, str):
                params[key] = value
    return params
