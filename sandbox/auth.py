"""API authentication shared by CRM and Desk: `Authorization: Zoho-oauthtoken ...` plus scopes."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from sandbox.http import oauth_token, request_origin, state_of
from sandbox.state import AccessToken


def authenticate(request: web.Request) -> AccessToken | None:
    """The live access token the request carries, or None (missing, unknown, expired, revoked,
    evicted, or minted for another API domain)."""
    token = oauth_token(request)
    if token is None:
        return None
    return state_of(request).authenticate(token, request_origin(request))


def has_scope(access: AccessToken, family: str, operation: str) -> bool:
    """Does the token hold `{family}.{operation}` or `{family}.ALL`? Zoho compares scope
    names without regard to case (Desk's own specs write `Desk.basic.READ` and
    `Desk.basic.read`)."""
    held = access.folded_scopes
    wanted = family.lower()
    return f"{wanted}.{operation.lower()}" in held or f"{wanted}.all" in held


def has_any_scope(access: AccessToken, families: Iterable[str], operation: str) -> bool:
    return any(has_scope(access, family, operation) for family in families)
