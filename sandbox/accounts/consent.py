"""Zoho's consent page, `GET /oauth/v2/auth`, approved at once for a chosen user.

A real browser would show Zoho's login and consent screens; the sandbox skips them and
redirects straight back, so the operator CLI's consent flow can run end to end with no
browser: `{redirect_uri}?code=...&location=us&accounts-server=ORIGIN&state=...`.

Sandbox-only parameters (Zoho ignores unknown ones; the sandbox reads these):
- `sandbox_user`: who approves (default the demo user; created on demand);
- `sandbox_consent=deny`: the user clicks "Reject" (`error=access_denied`).

As at Zoho, an unknown client or an unusable redirect URI is answered on the page itself
(nothing can be sent back safely); every other problem is sent back to the redirect URI.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from aiohttp import web

from sandbox.demo.tenant import DEMO_USER
from sandbox.http import json_response, public_origin, state_of

SANDBOX_LOCATION = "us"


def _page_error(error: str, description: str) -> web.Response:
    return json_response({"error": error, "error_description": description}, status=400)


def _redirect(redirect_uri: str, params: dict[str, str]) -> web.Response:
    separator = "&" if urlsplit(redirect_uri).query else "?"
    return web.Response(
        status=302, headers={"Location": redirect_uri + separator + urlencode(params)}
    )


def _usable_redirect(uri: str) -> bool:
    parts = urlsplit(uri)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not parts.fragment


async def authorize(request: web.Request) -> web.Response:
    state = state_of(request)
    query = request.query
    client = state.clients.get(query.get("client_id", ""))
    if client is None:
        return _page_error("invalid_client", "Invalid Client: no client has this client_id")
    redirect_uri = query.get("redirect_uri", "")
    if not _usable_redirect(redirect_uri):
        return _page_error("invalid_redirect_uri", "Invalid Redirect Uri")
    back: dict[str, str] = {}
    if "state" in query:
        back["state"] = query["state"]
    origin = public_origin(request)
    if query.get("response_type") != "code":
        return _redirect(redirect_uri, {"error": "unsupported_response_type", **back})
    scopes = [s for s in query.get("scope", "").replace(" ", ",").split(",") if s]
    if not scopes:
        return _redirect(redirect_uri, {"error": "invalid_scope", **back})
    if query.get("sandbox_consent") == "deny":
        return _redirect(redirect_uri, {"error": "access_denied", **back})
    grant = state.add_grant_code(
        user=query.get("sandbox_user") or DEMO_USER,
        client_id=client.client_id,
        scopes=scopes,
        redirect_uri=redirect_uri,
    )
    return _redirect(
        redirect_uri,
        {"code": grant.code, "location": SANDBOX_LOCATION, "accounts-server": origin, **back},
    )


def add_routes(app: web.Application) -> None:
    auth = app.router.add_resource("/oauth/v2/auth", name="auth")
    auth.add_route("GET", authorize)
