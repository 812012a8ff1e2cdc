"""Around every Zoho-facing request: record the call, act out injected faults, and make sure
nothing escapes as a stack trace or an aiohttp default page.

Control routes (`/_sandbox/...`) bypass all of this: they are neither recorded nor faulted.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

from aiohttp import web
from aiohttp.typedefs import Handler

from sandbox.accounts import THROTTLE_BODY
from sandbox.credits import (
    HEADER,
    WINDOW_SECONDS,
    OrgCredits,
    credits_of,
    remaining_header,
)
from sandbox.errors import crm_error, desk_error, internal_error, throttled
from sandbox.faults import Fault
from sandbox.http import (
    RECORD_KEY,
    json_response,
    oauth_token,
    public_origin,
    request_origin,
    state_of,
)
from sandbox.records import crm_org_key

log = logging.getLogger("sandbox")
CONTROL_PREFIX = "/_sandbox/"


def route_of(request: web.Request) -> str:
    """The fault/counter name of the matched route: `crm.watch`, `desk.webhooks`, ...

    Resource names may carry a `:suffix` to tell apart resources sharing a route name.
    """
    resource = request.match_info.route.resource
    name = resource.name if resource is not None else None
    if not name:
        return "unknown"
    return name.split(":", 1)[0]


def family_of(route: str) -> str:
    if route.startswith("crm."):
        return "crm"
    if route.startswith("desk."):
        return "desk"
    return "accounts"


def metered_org(request: web.Request, family: str, org_id: str | None) -> OrgCredits | None:
    """The org whose credits this call spends: CRM, the token's user's org; Desk, the orgId
    named (a known org). None for calls without a live token, which Zoho cannot bill."""
    if family not in ("crm", "desk"):
        return None
    token = oauth_token(request)
    if token is None:
        return None
    state = state_of(request)
    access = state.authenticate(token, request_origin(request))
    if access is None:
        return None
    if family == "crm":
        key = crm_org_key(access.user)
    elif org_id is not None and org_id in state.desk_orgs:
        key = org_id
    else:
        return None
    return state.credits.org(family, key, state.config.credits_default_edition)


def too_many_requests(family: str, why: str, org: OrgCredits, now: float) -> web.Response:
    if family == "desk":
        return desk_error(
            429, "TOO_MANY_REQUESTS", "You have exceeded the API request limit. Try again later."
        )
    if why == "concurrency":
        return crm_error(
            429,
            "TOO_MANY_REQUESTS",
            "The number of concurrent API requests has exceeded the allowed limit.",
            {"concurrency_limit": org.concurrency()},
        )
    # Credits come back as the oldest spent ones leave the rolling 24 hours.
    oldest = org.spent[0][0] if org.spent else now
    retry = max(1, int(oldest + WINDOW_SECONDS - now))
    return crm_error(
        429,
        "TOO_MANY_REQUESTS",
        "The number of API requests has exceeded the allowed limit.",
        {"retry_after": retry},
    )


def not_found(family: str) -> web.Response:
    if family == "crm":
        return crm_error(
            404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one"
        )
    if family == "desk":
        return desk_error(404, "URL_NOT_FOUND", "The URL you have requested could not be found.")
    return json_response({"error": "not_found"}, status=404)


def reset_connection(request: web.Request) -> None:
    """Drop the connection with a TCP RST, as a failing load balancer does."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0 turns close into RST instead of an orderly FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class ConnectionGone(Exception):
    """Raised after a reset/hang so aiohttp writes nothing more."""


async def _hang(request: web.Request, seconds: float | None) -> None:
    if seconds is not None:
        await asyncio.sleep(seconds)
        return
    # Never answer: wait until the client gives up (aiohttp does not cancel handlers when
    # the peer leaves, so poll), then make sure the connection is gone.
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(0.05)
    reset_connection(request)
    raise ConnectionGone("hang")


def _fault_response(request: web.Request, fault: Fault, family: str) -> web.StreamResponse:
    kind = fault.kind
    state = state_of(request)
    if kind == "status_500":
        return internal_error(family)
    if kind == "throttle":
        if family == "accounts":
            return json_response(THROTTLE_BODY, status=state.config.throttle_status)
        return throttled(family, state.config)
    if kind == "no_access_token":
        return json_response(
            {"api_domain": public_origin(request), "token_type": "Bearer", "expires_in": 3600}
        )
    if kind == "malformed":
        return web.Response(body=b'{"access_token":"1000.trunc', content_type="application/json")
    if kind == "non_json":
        return web.Response(
            text="<html><head><title>Zoho</title></head><body>Service unavailable</body></html>",
            content_type="text/html",
        )
    raise AssertionError(f"unhandled fault kind {kind}")


async def _act_out(request: web.Request, fault: Fault, family: str) -> web.StreamResponse | None:
    """The fault's answer, or None when the request should then proceed normally."""
    if fault.kind == "reset":
        reset_connection(request)
        raise ConnectionGone("reset")
    if fault.kind == "hang":
        await _hang(request, fault.seconds)
        return None
    return _fault_response(request, fault, family)


@web.middleware
async def zoho_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(CONTROL_PREFIX):
        return await handler(request)
    state = state_of(request)
    route = route_of(request)
    family = family_of(route)
    org_id = request.headers.get("orgId") or request.query.get("orgId")
    record = state.calls.start(
        at=state.clock.now(),
        route=route,
        method=request.method,
        path=request.path,
        authorization="Authorization" in request.headers,
        token=oauth_token(request),
        org_id=org_id,
    )
    request[RECORD_KEY] = record
    latency_ms, fault = state.faults.take(route)
    metered = metered_org(request, family, org_id)
    if metered is not None:
        refusal = state.credits.admit(metered, state.clock.now())
        if refusal is not None:
            metered.rejected[refusal] += 1
            answer = too_many_requests(family, refusal, metered, state.clock.now())
            record.status = answer.status
            return answer
    # A hang models a stuck connection, not a call Zoho is working on.
    in_flight = metered is not None and (fault is None or fault.kind != "hang")
    if in_flight and metered is not None:
        metered.in_flight += 1
    try:
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        response: web.StreamResponse | None = None
        if fault is not None and fault.when == "before":
            response = await _act_out(request, fault, family)
            if response is not None and route == "token":
                # The handler never ran: nothing was minted.
                state.calls.outcome(record, f"fault.{fault.kind}")
        if response is None:
            response = await _call(handler, request, route, family)
            if fault is not None and fault.when == "after":
                # The handler ran (and recorded what it did); only the answer is spoiled.
                response = await _act_out(request, fault, family) or response
    except ConnectionGone as gone:
        if route == "token" and record.outcome is None:
            state.calls.outcome(record, f"fault.{gone.args[0]}")
        # Nothing can be written; returning a response would only make aiohttp try to write
        # to the dead transport.
        raise asyncio.CancelledError from None
    finally:
        if in_flight and metered is not None:
            metered.in_flight -= 1
    if metered is not None:
        now = state.clock.now()
        metered.spend(now, route, credits_of(request))
        remaining = remaining_header(metered, now)
        if remaining is not None:
            response.headers[HEADER] = remaining
    record.status = response.status
    return response


async def _call(
    handler: Handler, request: web.Request, route: str, family: str
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return not_found(family)
    except web.HTTPMethodNotAllowed:
        return not_found(family)
    except web.HTTPException:
        raise
    except Exception as exc:
        # Type only: messages can carry request data, and tokens must never reach logs.
        log.error("handler for %s failed: %s", route, type(exc).__name__)
        return internal_error(family)
