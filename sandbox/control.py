"""The test control interface under `/_sandbox/`: JSON in, JSON out, loopback peers only
(plus the networks named by `--control-from`, for a test runner in another container).

Nothing here is Zoho: it seeds the model, moves the clock, injects faults and reports what
Zoho-facing routes received. `sandbox/control_client.py` wraps every call.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, fields
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from sandbox import control_events, control_records, demo
from sandbox.control_args import ControlError
from sandbox.control_args import body_of as _body
from sandbox.control_args import get as _get
from sandbox.control_args import str_list as _str_list
from sandbox.crm_validation import WatchError, build_item
from sandbox.desk_validation import WebhookError, build_webhook
from sandbox.faults import FaultError
from sandbox.http import DEMO_SIZES_KEY, BadJson, json_response, state_of
from sandbox.middleware import CONTROL_PREFIX
from sandbox.records import RecordError
from sandbox.state import CONFIG_CHOICES, Config, RefreshToken, SandboxState

POSITIVE_SETTINGS = frozenset(
    {
        "delivery_concurrency",
        "crm_delivery_timeout_seconds",
        "desk_delivery_timeout_seconds",
        "crm_page_token_ttl_seconds",
        "crm_page_token_record_limit",
    }
)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
CONTROL_NETWORKS_KEY = web.AppKey("control_networks", tuple[Network, ...])


def parse_networks(raw: str) -> tuple[Network, ...]:
    """`10.0.0.0/8,fd00::/8` -> networks; raises ValueError naming a bad one."""
    return tuple(ipaddress.ip_network(item.strip()) for item in raw.split(",") if item.strip())


def _control_allowed(peer: str | None, networks: tuple[Network, ...]) -> bool:
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False
    return address.is_loopback or any(address in network for network in networks)


@web.middleware
async def control_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    if not _control_allowed(request.remote, request.app.get(CONTROL_NETWORKS_KEY, ())):
        return json_response({"error": "the control API answers loopback peers only"}, 403)
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return json_response({"error": f"no control call {request.method} {request.path}"}, 404)
    except (ControlError, FaultError, WatchError, WebhookError, BadJson, RecordError) as exc:
        return json_response({"error": str(exc)}, 400)


# ---- argument helpers ------------------------------------------------------------------


def _int_list(body: dict[str, Any], key: str) -> list[int]:
    value = _get(body, key, list, [])
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ControlError(f"{key!r} must be a list of positive integers")
    return list(value)


def _rt(state: SandboxState, body: dict[str, Any]) -> RefreshToken:
    token = _get(body, "refresh_token", str)
    rt = state.refresh_tokens.get(token)
    if rt is None:
        raise ControlError("unknown refresh token")
    return rt


# ---- handlers ----------------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    return json_response({"ok": True, "origin": state_of(request).origin})


async def reset(request: web.Request) -> web.Response:
    body = await _body(request)
    state = state_of(request)
    state.clear()
    if _get(body, "demo", bool, True):
        sizes = request.app[DEMO_SIZES_KEY]
        demo.seed_demo(
            state,
            crm_items=_get(body, "crm_items", int, sizes.crm_items),
            desk_webhooks=_get(body, "desk_webhooks", int, sizes.desk_webhooks),
            records=_get(body, "records", int, sizes.records),
        )
    return json_response({"ok": True})


async def clock(request: web.Request) -> web.Response:
    state = state_of(request)
    return json_response({"now": state.clock.now(), "offset": state.clock.offset})


async def advance_clock(request: web.Request) -> web.Response:
    seconds = _get(await _body(request), "seconds", (int, float))
    state = state_of(request)
    try:
        state.clock.advance(float(seconds))
    except ValueError as exc:
        raise ControlError(str(exc)) from None
    return json_response({"now": state.clock.now(), "offset": state.clock.offset})


async def configure(request: web.Request) -> web.Response:
    body = await _body(request)
    state = state_of(request)
    defaults = Config()
    known = {f.name for f in fields(Config)}
    for key, value in body.items():
        if key not in known:
            raise ControlError(f"unknown setting {key!r}")
        default = getattr(defaults, key)
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ControlError(f"{key!r} must be a boolean")
        elif isinstance(default, str):
            if value not in CONFIG_CHOICES.get(key, ()):
                raise ControlError(f"{key!r} must be one of {CONFIG_CHOICES.get(key)}")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise ControlError(f"{key!r} must be a number")
        elif key in POSITIVE_SETTINGS and value <= 0:
            # A zero timeout would mean none to aiohttp, and zero slots no deliveries.
            raise ControlError(f"{key!r} must be > 0")
        setattr(state.config, key, value)
    return json_response(asdict(state.config))


async def add_client(request: web.Request) -> web.Response:
    body = await _body(request)
    state = state_of(request)
    client = state.add_client(
        _get(body, "client_id", str, f"1000.CLIENT{len(state.clients) + 1}"),
        _get(body, "client_secret", str, f"secret-{len(state.clients) + 1}"),
    )
    return json_response({"client_id": client.client_id, "client_secret": client.client_secret})


async def add_user(request: web.Request) -> web.Response:
    body = await _body(request)
    user = state_of(request).add_user(_get(body, "user", str), _get(body, "email", str, None))
    return json_response(
        {"user": user.user_id, "email": user.email, "crm_user_id": user.crm_user_id}
    )


def _token_options(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "user": _get(body, "user", str, demo.DEMO_USER),
        "client_id": _get(body, "client_id", str, demo.DEMO_CLIENT_ID),
        "scopes": _str_list(body, "scopes", list(demo.DEMO_SCOPES)),
        "api_origin": _get(body, "api_origin", str, None),
        "accounts_origin": _get(body, "accounts_origin", str, None),
        "lifetimes": _int_list(body, "lifetimes"),
        "legacy": _get(body, "legacy", bool, False),
    }


async def add_refresh_token(request: web.Request) -> web.Response:
    body = await _body(request)
    rt = state_of(request).add_refresh_token(
        token=_get(body, "refresh_token", str, None), **_token_options(body)
    )
    return json_response({"refresh_token": rt.token})


async def add_grant_code(request: web.Request) -> web.Response:
    body = await _body(request)
    code = state_of(request).add_grant_code(
        redirect_uri=_get(body, "redirect_uri", str, None),
        ttl_seconds=_get(body, "ttl_seconds", (int, float), None),
        **_token_options(body),
    )
    return json_response({"code": code.code, "expires_at": code.expires_at})


async def revoke_refresh_token(request: web.Request) -> web.Response:
    body = await _body(request)
    revoked = state_of(request).revoke_refresh_token(_get(body, "refresh_token", str))
    return json_response({"revoked": revoked})


async def refresh_token_status(request: web.Request) -> web.Response:
    state = state_of(request)
    rt = _rt(state, await _body(request))
    return json_response(
        {
            "user": rt.user.user_id,
            "client_id": rt.client_id,
            "scopes": list(rt.scopes),
            "revoked": rt.revoked,
            "minted_total": rt.minted_total,
            "minted_in_window": state.window_count(rt),
            "live": [
                {"access_token": a.token, "issued_at": a.issued_at, "expires_at": a.expires_at}
                for a in state.live_tokens(rt)
            ],
        }
    )


async def invalidate_access_token(request: web.Request) -> web.Response:
    body = await _body(request)
    done = state_of(request).invalidate_access_token(_get(body, "access_token", str))
    return json_response({"invalidated": done})


async def access_token_status(request: web.Request) -> web.Response:
    state = state_of(request)
    token = _get(await _body(request), "access_token", str)
    access = state.access_tokens.get(token)
    if access is None:
        return json_response({"valid": False, "reason": state.dead_tokens.get(token, "unknown")})
    valid = state.authenticate(token, access.api_origin or "") is not None
    reason = None
    if not valid:
        reason = "revoked" if access.refresh and access.refresh.revoked else "expired"
    return json_response(
        {
            "valid": valid,
            "reason": reason,
            "user": access.user.user_id,
            "scopes": sorted(access.scopes),
            "issued_at": access.issued_at,
            "expires_at": access.expires_at,
        }
    )


async def seed_crm_channels(request: web.Request) -> web.Response:
    body = await _body(request)
    state = state_of(request)
    user = state.add_user(_get(body, "user", str, demo.DEMO_USER))
    if "items" in body:
        raw = _get(body, "items", list)
        items = [
            item for i, one in enumerate(raw) for item in build_item(state, one, f"$.items[{i}]")
        ]
    else:
        modules = _str_list(body, "modules", list(demo.DEMO_MODULES))
        unknown = [m for m in modules if m not in demo.CRM_MODULES]
        if unknown or not modules:
            raise ControlError(f"unknown modules {unknown}")
        items = demo.generate_watch_items(
            state,
            _get(body, "count", int),
            modules=modules,
            first_channel=_get(body, "first_channel", int, demo.FIRST_CHANNEL_ID),
        )
    if _get(body, "replace", bool, False):
        user.crm.clear()
    for item in items:
        user.crm.put(item)
    return json_response({"added": len(items), "total": len(user.crm)})


async def crm_channels(request: web.Request) -> web.Response:
    body = await _body(request)
    state = state_of(request)
    user = state.users.get(_get(body, "user", str, demo.DEMO_USER))
    if user is None:
        raise ControlError("unknown user")
    user.crm.expire(state.clock.now())
    return json_response({"items": user.crm.query()})


async def add_desk_org(request: web.Request) -> web.Response:
    body = await _body(request)
    org = demo.add_desk_org(
        state_of(request),
        user=_get(body, "user", str, demo.DEMO_USER),
        org_id=_get(body, "org_id", str, None),
        company_name=_get(body, "company_name", str, None),
        portal_name=_get(body, "portal_name", str, None),
        edition=_get(body, "edition", str, "Enterprise"),
    )
    return json_response(org.as_json())


async def seed_desk_webhooks(request: web.Request) -> web.Response:
    body = await _body(request)
    state = state_of(request)
    org = state.desk_orgs.get(_get(body, "org_id", str, demo.DEMO_DESK_ORG_ID))
    if org is None:
        raise ControlError("unknown org")
    if "items" in body:
        made = []
        for raw in _get(body, "items", list):
            hook = build_webhook(state, raw)
            org.put_webhook(hook)
            made.append(hook)
    else:
        made = demo.generate_webhooks(state, org, _get(body, "count", int))
    return json_response({"webhooks": made, "total": len(org.webhooks)})


async def add_fault(request: web.Request) -> web.Response:
    body = await _body(request)
    fault = state_of(request).faults.add(
        _get(body, "route", str),
        _get(body, "kind", str),
        count=_get(body, "count", int, None) if "count" in body else 1,
        latency_ms=_get(body, "latency_ms", int, 0),
        seconds=_get(body, "seconds", (int, float), None),
        when=_get(body, "when", str, "before"),
    )
    return json_response(fault.as_json())


async def list_faults(request: web.Request) -> web.Response:
    return json_response({"faults": [f.as_json() for f in state_of(request).faults.active()]})


async def clear_faults(request: web.Request) -> web.Response:
    body = await _body(request)
    state_of(request).faults.clear(_get(body, "route", str, None))
    return json_response({"ok": True})


async def counters(request: web.Request) -> web.Response:
    calls = state_of(request).calls
    return json_response(
        {"token_outcomes": dict(calls.token_outcomes), "per_route": dict(calls.per_route)}
    )


async def calls(request: web.Request) -> web.Response:
    route = request.query.get("route")
    records = state_of(request).calls.select(route)
    return json_response({"calls": [r.as_json() for r in records]})


async def clear_calls(request: web.Request) -> web.Response:
    state_of(request).calls.clear()
    return json_response({"ok": True})


def add_control_routes(app: web.Application) -> None:
    p = CONTROL_PREFIX
    r = app.router
    r.add_get(p + "health", health)
    r.add_post(p + "reset", reset)
    r.add_get(p + "clock", clock)
    r.add_post(p + "clock/advance", advance_clock)
    r.add_post(p + "config", configure)
    r.add_post(p + "clients", add_client)
    r.add_post(p + "users", add_user)
    r.add_post(p + "refresh_tokens", add_refresh_token)
    r.add_post(p + "refresh_tokens/revoke", revoke_refresh_token)
    r.add_post(p + "refresh_tokens/status", refresh_token_status)
    r.add_post(p + "access_tokens/invalidate", invalidate_access_token)
    r.add_post(p + "access_tokens/status", access_token_status)
    r.add_post(p + "grant_codes", add_grant_code)
    r.add_post(p + "crm/channels", seed_crm_channels)
    r.add_post(p + "crm/channels/list", crm_channels)
    r.add_post(p + "desk/orgs", add_desk_org)
    r.add_post(p + "desk/webhooks", seed_desk_webhooks)
    r.add_post(p + "faults", add_fault)
    r.add_get(p + "faults", list_faults)
    r.add_post(p + "faults/clear", clear_faults)
    r.add_get(p + "counters", counters)
    r.add_get(p + "calls", calls)
    r.add_post(p + "calls/clear", clear_calls)
    control_events.add_routes(app, p)
    control_records.add_routes(app, p)
