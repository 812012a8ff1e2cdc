"""Zoho's accounts server: the token endpoint (both grants) and revocation.

Errors come back as HTTP 200 with an `error` field, as Zoho's do: a client may only treat a
body carrying `access_token` as success.
"""

from __future__ import annotations

from aiohttp import web

from sandbox.http import json_response, public_origin, read_params, record_of, state_of
from sandbox.state import AccessToken, RefreshToken, SandboxState

THROTTLE_BODY = {
    "error_description": "You have made too many requests continuously. "
    "Please try again after some time.",
    "error": "Access Denied",
    "status": "failure",
}


def _outcome(request: web.Request, outcome: str) -> None:
    record = record_of(request)
    if record is not None:
        state_of(request).calls.outcome(record, outcome)


def _error(request: web.Request, error: str) -> web.Response:
    _outcome(request, error)
    return json_response({"error": error})


def success_body(
    request: web.Request, access: AccessToken, rt: RefreshToken, *, with_refresh: bool
) -> dict[str, object]:
    lifetime = round(access.expires_at - access.issued_at)
    body: dict[str, object] = {"access_token": access.token}
    if with_refresh:
        body["refresh_token"] = rt.token
    body["scope"] = " ".join(rt.scopes)
    body["api_domain"] = rt.api_origin or public_origin(request)
    body["token_type"] = "Bearer"
    if rt.legacy:
        # Older Zoho answers: milliseconds in expires_in, seconds in expires_in_sec.
        body["expires_in_sec"] = lifetime
        body["expires_in"] = lifetime * 1000
    else:
        body["expires_in"] = lifetime
    return body


def _throttled(request: web.Request, state: SandboxState) -> web.Response:
    _outcome(request, "throttled")
    return json_response(THROTTLE_BODY, status=state.config.throttle_status)


async def token(request: web.Request) -> web.Response:
    state = state_of(request)
    params = await read_params(request)
    grant_type = params.get("grant_type")
    record = record_of(request)
    if record is not None:
        record.grant_type = grant_type
        if grant_type == "refresh_token":
            record.refresh_token = params.get("refresh_token")

    client = state.clients.get(params.get("client_id", ""))
    if client is None:
        return _error(request, "invalid_client")
    if params.get("client_secret") != client.client_secret:
        return _error(request, "invalid_client_secret")
    if grant_type == "refresh_token":
        return _refresh(request, state, client.client_id, params.get("refresh_token", ""))
    if grant_type == "authorization_code":
        return _exchange(request, state, client.client_id, params)
    return _error(request, "unsupported_grant_type")


def _refresh(request: web.Request, state: SandboxState, client_id: str, token: str) -> web.Response:
    rt = state.refresh_tokens.get(token)
    if rt is None or rt.revoked or rt.client_id != client_id:
        return _error(request, "invalid_code")
    access = state.mint(rt)
    if access is None:
        return _throttled(request, state)
    _outcome(request, "success")
    return json_response(success_body(request, access, rt, with_refresh=False))


def _exchange(
    request: web.Request, state: SandboxState, client_id: str, params: dict[str, str]
) -> web.Response:
    grant = state.grant_codes.get(params.get("code", ""))
    if (
        grant is None
        or grant.used
        or grant.expires_at <= state.clock.now()
        or grant.client_id != client_id
    ):
        return _error(request, "invalid_code")
    if grant.redirect_uri is not None and params.get("redirect_uri") != grant.redirect_uri:
        return _error(request, "invalid_redirect_uri")
    # One-time: a second exchange of the same code fails even if this one is throttled.
    grant.used = True
    rt = state.add_refresh_token(
        user=grant.user.user_id,
        client_id=client_id,
        scopes=grant.scopes,
        api_origin=grant.api_origin,
        accounts_origin=grant.accounts_origin,
        lifetimes=grant.lifetimes,
        legacy=grant.legacy,
    )
    access = state.mint(rt)
    if access is None:  # only if mint_limit was configured to 0
        return _throttled(request, state)
    _outcome(request, "success")
    return json_response(success_body(request, access, rt, with_refresh=True))


async def revoke(request: web.Request) -> web.Response:
    state = state_of(request)
    params = await read_params(request)
    token = params.get("token")
    record = record_of(request)
    if record is not None:
        record.refresh_token = token
    if not token:
        return json_response({"error": "invalid_request"}, status=400)
    # Zoho revokes refresh tokens here (and access tokens too). Unknown tokens also get
    # "success": revocation is idempotent and must not reveal which tokens exist.
    if not state.revoke_refresh_token(token):
        state.invalidate_access_token(token)
    return json_response({"status": "success"})
