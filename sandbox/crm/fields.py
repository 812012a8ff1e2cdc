"""CRM `GET /crm/v8/settings/fields?module=...`: the fields metadata Zoho's SDK reads before it
reads a module's records (it types the record's values by it).

Only what the sandbox's records hold: the system fields (`Owner`, `Created_By`,
`Modified_By` owner lookups, `Created_Time`, `Modified_Time`) and the module's ordinary
fields. Scope `ZohoCRM.settings.fields.READ` (or `ZohoCRM.settings.READ`, `.ALL`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sandbox.auth import authenticate, has_any_scope
from sandbox.crm.records import invalid_module
from sandbox.demo import tenant as demo
from sandbox.errors import crm_error
from sandbox.http import json_response, state_of
from sandbox.records.store import CRM_FIELDS, DISPLAY_FIELD

SYSTEM = (
    ("Owner", "ownerlookup", "Record Owner"),
    ("Created_By", "ownerlookup", "Created By"),
    ("Modified_By", "ownerlookup", "Modified By"),
    ("Created_Time", "datetime", "Created Time"),
    ("Modified_Time", "datetime", "Modified Time"),
)
JSON_TYPE = {"ownerlookup": "jsonobject", "datetime": "string", "double": "double"}
DATA_TYPE = {"Email": "email", "Phone": "phone", "Amount": "currency", "Closing_Date": "date",
             "Website": "website", "Lead_Status": "picklist", "Stage": "picklist",
             "Industry": "picklist"}  # fmt: skip


def _field(module_id: str, index: int, api_name: str, data_type: str, label: str) -> dict[str, Any]:
    return {
        "api_name": api_name,
        "id": str(int(module_id) + 1000 + index),
        "field_label": label,
        "display_label": label,
        "data_type": data_type,
        "json_type": JSON_TYPE.get(data_type, "string"),
        "system_mandatory": api_name in ("Last_Name", "Account_Name", "Deal_Name"),
        "custom_field": False,
        "read_only": data_type in ("datetime",) or api_name in ("Created_By", "Modified_By"),
        "visible": True,
    }


async def get_fields(request: web.Request) -> web.Response:
    access = authenticate(request)
    if access is None:
        code = state_of(request).config.crm_token_error_code
        return crm_error(401, code, "invalid oauth token")
    if not has_any_scope(access, ("ZohoCRM.settings.fields", "ZohoCRM.settings"), "READ"):
        return crm_error(401, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL")
    module = request.query.get("module")
    if module is None:
        return crm_error(
            400, "REQUIRED_PARAM_MISSING", "required param is missing", {"param_name": "module"}
        )
    if module not in demo.CRM_MODULES:
        return invalid_module()
    names = CRM_FIELDS.get(module, (DISPLAY_FIELD.get(module, "Name"), "Description"))
    ordinary = [(n, DATA_TYPE.get(n, "text"), n.replace("_", " ")) for n in names]
    module_id = demo.CRM_MODULES[module]
    fields = [_field(module_id, i, *spec) for i, spec in enumerate((*SYSTEM, *ordinary))]
    return json_response({"fields": fields})


def add_routes(app: web.Application) -> None:
    fields = app.router.add_resource("/crm/v8/settings/fields", name="crm.fields")
    fields.add_route("GET", get_fields)
