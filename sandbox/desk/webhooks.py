"""Desk under `/api/v1`: organizations, and webhooks (Desk's stand-in for notifications)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from sandbox.auth import authenticate, has_any_scope
from sandbox.desk.store import DeskOrg
from sandbox.desk.validation import WebhookError, build_webhook, patch_webhook
from sandbox.errors import desk_error, desk_invalid
from sandbox.http import BadJson, json_response, read_json, state_of
from sandbox.state import AccessToken, SandboxState

MAX_LIMIT = 100
# Newer portals use Desk.webhooks.*, older ones Desk.events.* or Desk.settings.*.
WEBHOOK_SCOPE_FAMILIES = ("Desk.webhooks", "Desk.events", "Desk.settings")
OPERATION = {"GET": "READ", "POST": "CREATE", "PATCH": "UPDATE", "DELETE": "DELETE"}
# Organization.json: any of these reads organisations.
ORG_SCOPE_FAMILIES = ("Desk.basic", "Desk.organization", "Desk.settings")


def authorize_desk(
    request: web.Request, families: tuple[str, ...], operation: str
) -> AccessToken | web.Response:
    access = authenticate(request)
    if access is None:
        return desk_error(401, "INVALID_OAUTH", "The OAuth Token you provided is invalid.")
    if not has_any_scope(access, families, operation):
        return desk_error(
            401, "SCOPE_MISMATCH", "The OAuth Token you provided does not have the required scope."
        )
    return access


def desk_org_of(request: web.Request, access: AccessToken) -> DeskOrg | web.Response:
    org_id = request.headers.get("orgId") or request.query.get("orgId")
    if not org_id:
        return desk_invalid("orgId", "missing", "orgId is required")
    if not org_id.isdigit():
        return desk_invalid("orgId", "invalid", "orgId must be a number")
    org = state_of(request).desk_orgs.get(org_id)
    if org is None or org_id not in access.user.desk_org_ids:
        # Status unconfirmed by Zoho's docs; third-party clients report 403.
        return desk_error(
            403, "OAUTH_ORG_MISMATCH", "The OAuthToken is not valid for specified organization."
        )
    return org


async def _webhook_context(request: web.Request) -> tuple[AccessToken, DeskOrg] | web.Response:
    access = authorize_desk(request, WEBHOOK_SCOPE_FAMILIES, OPERATION[request.method])
    if isinstance(access, web.Response):
        return access
    org = desk_org_of(request, access)
    if isinstance(org, web.Response):
        return org
    return access, org


def _paging(request: web.Request, default_limit: int) -> tuple[int, int] | web.Response:
    start_text = request.query.get("from", "0")
    limit_text = request.query.get("limit", str(default_limit))
    if not start_text.isdigit():
        return desk_invalid("from", "invalid", "from must be a non-negative integer")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
        return desk_invalid("limit", "invalid", f"limit must be between 1 and {MAX_LIMIT}")
    return int(start_text), int(limit_text)


def _org_list(request: web.Request, access: AccessToken) -> list[dict[str, object]]:
    state = state_of(request)
    as_strings = state.config.desk_org_booleans_as_strings
    orgs = state.desk_orgs
    return [
        orgs[i].as_json(booleans_as_strings=as_strings)
        for i in access.user.desk_org_ids
        if i in orgs
    ]


async def organizations(request: web.Request) -> web.Response:
    """`GET /organizations` and `GET /accessibleOrganizations` (the orgs this token can
    reach: the same set here)."""
    access = authorize_desk(request, ORG_SCOPE_FAMILIES, "READ")
    if isinstance(access, web.Response):
        return access
    data = _org_list(request, access)
    if not data:
        return web.Response(status=204)
    return json_response({"data": data})


async def organization(request: web.Request) -> web.Response:
    access = authorize_desk(request, ORG_SCOPE_FAMILIES, "READ")
    if isinstance(access, web.Response):
        return access
    wanted = request.match_info["organization_id"]
    for org in _org_list(request, access):
        if org["id"] == wanted:
            return json_response(org)
    if not wanted.isdigit():
        return desk_invalid("/organizationId", "invalid", "organizationId must be a number")
    return desk_error(
        403, "OAUTH_ORG_MISMATCH", "The OAuthToken is not valid for specified organization."
    )


async def list_webhooks(request: web.Request) -> web.Response:
    context = await _webhook_context(request)
    if isinstance(context, web.Response):
        return context
    _, org = context
    paging = _paging(request, MAX_LIMIT)
    if isinstance(paging, web.Response):
        return paging
    start, limit = paging
    chunk = org.listing()[start : start + limit]
    if not chunk:
        return web.Response(status=204)
    return json_response({"data": chunk})


async def _json_body(request: web.Request) -> object | web.Response:
    try:
        return await read_json(request)
    except BadJson:
        return desk_invalid("/", "invalid", "The body is not valid JSON")


async def create_webhook(request: web.Request) -> web.Response:
    context = await _webhook_context(request)
    if isinstance(context, web.Response):
        return context
    _, org = context
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    state = state_of(request)
    if len(org.webhooks) >= state.config.desk_webhook_limit:
        return _limit_reached(state)
    try:
        hook = build_webhook(state, body)
    except WebhookError as exc:
        return desk_invalid(exc.field, exc.error_type, exc.message)
    refused = await _url_check(state, str(hook["url"]))
    if refused is not None:
        return refused
    if len(org.webhooks) >= state.config.desk_webhook_limit:  # while the check ran
        return _limit_reached(state)
    org.put_webhook(hook)
    return json_response(hook)


def _limit_reached(state: SandboxState) -> web.Response:
    return desk_error(
        422,
        "UNPROCESSABLE_ENTITY",
        f"A portal can have at most {state.config.desk_webhook_limit} webhooks.",
    )


async def _url_check(state: SandboxState, url: str) -> web.Response | None:
    """Desk's check before it creates a webhook or changes its URL (Webhook.json,
    createWebhook): a GET to the URL, then a POST if that was not 200; without a 200 the
    write fails. Sent only where --deliver-to allows; elsewhere the check fails."""
    if not state.config.desk_url_check:
        return None
    if state.deliveries.deliver_to.allows(url):
        timeout = aiohttp.ClientTimeout(total=state.config.desk_delivery_timeout_seconds)
        for method in ("GET", "POST"):
            try:
                async with state.deliveries.client().request(
                    method, url, timeout=timeout, allow_redirects=False
                ) as answer:
                    if answer.status == 200:
                        return None
            except (aiohttp.ClientError, TimeoutError):
                continue
    return desk_invalid(
        "/url", "invalid", "The URL did not answer Desk's validation request with 200 OK"
    )


def _find(request: web.Request, org: DeskOrg) -> dict[str, object] | web.Response:
    hook = org.webhooks.get(request.match_info["webhook_id"])
    if hook is None:
        return desk_error(404, "URL_NOT_FOUND", "The URL you have requested could not be found.")
    return hook


async def get_webhook(request: web.Request) -> web.Response:
    context = await _webhook_context(request)
    if isinstance(context, web.Response):
        return context
    hook = _find(request, context[1])
    return hook if isinstance(hook, web.Response) else json_response(hook)


async def update_webhook(request: web.Request) -> web.Response:
    context = await _webhook_context(request)
    if isinstance(context, web.Response):
        return context
    org = context[1]
    hook = _find(request, org)
    if isinstance(hook, web.Response):
        return hook
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    state = state_of(request)
    try:
        updated = patch_webhook(state, hook, body)
    except WebhookError as exc:
        return desk_invalid(exc.field, exc.error_type, exc.message)
    if updated["url"] != hook["url"]:
        refused = await _url_check(state, str(updated["url"]))
        if refused is not None:
            return refused
    if hook["id"] not in org.webhooks:  # deleted while the check ran
        return desk_error(404, "URL_NOT_FOUND", "The URL you have requested could not be found.")
    org.put_webhook(updated)
    return json_response(updated)


async def delete_webhook(request: web.Request) -> web.Response:
    context = await _webhook_context(request)
    if isinstance(context, web.Response):
        return context
    org = context[1]
    hook = _find(request, org)
    if isinstance(hook, web.Response):
        return hook
    org.delete_webhook(request.match_info["webhook_id"])
    # Webhook.json: 200 with no body (emptyResponse).
    return web.Response(status=200)


async def desk_not_found(request: web.Request) -> web.Response:
    return desk_error(404, "URL_NOT_FOUND", "The URL you have requested could not be found.")


def add_routes(app: web.Application) -> None:
    orgs = app.router.add_resource("/api/v1/organizations", name="desk.orgs")
    orgs.add_route("GET", organizations)
    accessible = app.router.add_resource(
        "/api/v1/accessibleOrganizations", name="desk.orgs:accessible"
    )
    accessible.add_route("GET", organizations)
    one_org = app.router.add_resource(
        "/api/v1/organizations/{organization_id}", name="desk.orgs:one"
    )
    one_org.add_route("GET", organization)
    hooks = app.router.add_resource("/api/v1/webhooks", name="desk.webhooks")
    hooks.add_route("GET", list_webhooks)
    hooks.add_route("POST", create_webhook)
    one = app.router.add_resource("/api/v1/webhooks/{webhook_id}", name="desk.webhooks:one")
    one.add_route("GET", get_webhook)
    one.add_route("PATCH", update_webhook)
    one.add_route("DELETE", delete_webhook)
    other = app.router.add_resource("/api/{tail:.*}", name="desk.unknown")
    other.add_route("*", desk_not_found)
