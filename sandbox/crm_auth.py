"""CRM's answers for a request it cannot serve: no live token, a missing scope, a bad
query parameter."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sandbox.auth import authenticate, has_scope
from sandbox.errors import crm_error
from sandbox.http import state_of
from sandbox.state import AccessToken


def authorize(request: web.Request, family: str, operation: str) -> AccessToken | web.Response:
    access = authenticate(request)
    if access is None:
        code = state_of(request).config.crm_token_error_code
        return crm_error(401, code, "invalid oauth token")
    if not has_scope(access, family, operation):
        return crm_error(401, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL")
    return access


def authorize_module(request: web.Request, module: str) -> AccessToken | web.Response:
    """Reading a module's records: `ZohoCRM.modules.READ` (or `.ALL`), or the module's own
    `ZohoCRM.modules.{module}.READ` (or `.ALL`), compared without case as Zoho does."""
    access = authenticate(request)
    if access is None:
        code = state_of(request).config.crm_token_error_code
        return crm_error(401, code, "invalid oauth token")
    if not (
        has_scope(access, "ZohoCRM.modules", "READ")
        or has_scope(access, f"ZohoCRM.modules.{module}", "READ")
    ):
        # getRecords' 401 example: message "Unauthorized", empty details.
        return crm_error(401, "OAUTH_SCOPE_MISMATCH", "Unauthorized")
    return access


def param_error(name: str, **extra: Any) -> web.Response:
    return crm_error(400, "INVALID_DATA", "invalid data", {"param_name": name, **extra})
