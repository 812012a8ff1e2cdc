"""CRM `/crm/v8/users` and `/crm/v8/org`: what Zoho's SDK reads right after a refresh."""

from __future__ import annotations

from aiohttp import web

from sandbox.crm_auth import authorize, param_error
from sandbox.http import json_response

USER_TYPES = (
    "AllUsers",
    "ActiveUsers",
    "DeactiveUsers",
    "ConfirmedUsers",
    "NotConfirmedUsers",
    "DeletedUsers",
    "ActiveConfirmedUsers",
    "AdminUsers",
    "ActiveConfirmedAdmins",
    "CurrentUser",
)


async def get_users(request: web.Request) -> web.Response:
    access = authorize(request, "ZohoCRM.users", "READ")
    if isinstance(access, web.Response):
        return access
    kind = request.query.get("type", "AllUsers")
    if kind not in USER_TYPES:
        return param_error("type")
    user = access.user
    name = user.user_id.capitalize()
    body = {
        "users": [
            {
                "id": user.crm_user_id,
                "email": user.email,
                "full_name": f"{name} User",
                "first_name": name,
                "last_name": "User",
                "status": "active",
                "confirm": True,
                "role": {"name": "CEO", "id": "5725767000000026005"},
                "profile": {"name": "Administrator", "id": "5725767000000026011"},
                "time_zone": "Etc/UTC",
                "locale": "en_US",
                "country_locale": "en_US",
                "language": "en_US",
            }
        ],
        "info": {"per_page": 200, "count": 1, "page": 1, "more_records": False},
    }
    return json_response(body)


async def get_org(request: web.Request) -> web.Response:
    # Zoho's SDK reads the org's zgid right after its first token refresh.
    access = authorize(request, "ZohoCRM.org", "READ")
    if isinstance(access, web.Response):
        return access
    user = access.user
    org = {
        "id": str(int(user.crm_user_id) - 410000),
        "zgid": str(int(user.crm_user_id) % 1_000_000_000),
        "company_name": f"{user.user_id.capitalize()} Sandbox Org",
        "primary_email": user.email,
        "domain_name": f"org{user.crm_user_id[-6:]}",
        "country_code": "US",
        "currency": "US Dollar - USD",
        "currency_symbol": "$",
        "iso_code": "USD",
        "time_zone": "Etc/UTC",
        "type": "production",
    }
    return json_response({"org": [org]})
