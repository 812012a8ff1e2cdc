"""CRM `POST /crm/v8/coql`: `{"select_query": "..."}` answered from the org's records as
zoho/crm-oas v8.0 coql says (parsing and evaluation in sandbox.coql)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from sandbox import coql, credits, demo
from sandbox.auth import has_scope
from sandbox.crm_auth import authorize
from sandbox.errors import crm_error
from sandbox.http import BadJson, json_response, read_json
from sandbox.state import AccessToken

COQL = "ZohoCRM.coql"
MODULES = "ZohoCRM.modules"
FIELDS_META = "ZohoCRM.settings.fields"
INCLUDE_META_VALUES = ("fields",)

# Where the records come from: (the caller's token, module) -> the module's live records.
RecordsSource = Callable[[AccessToken, str], Iterable[Mapping[str, Any]]]
RECORDS_SOURCE: web.AppKey[RecordsSource] = web.AppKey("coql_records_source")


def _no_records(_access: AccessToken, _module: str) -> list[Mapping[str, Any]]:
    return []


def scope_mismatch() -> web.Response:
    return crm_error(401, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL")


def _coql_error(exc: coql.CoqlError) -> web.Response:
    return crm_error(400, exc.code, exc.message, exc.details)


def _invalid(details: dict[str, Any]) -> web.Response:
    return crm_error(400, "INVALID_DATA", "invalid data", details)


def _include_meta(body: dict[str, Any]) -> bool | web.Response:
    """Whether `include_meta` asks for `fields`, or the spec's INVALID_DATA answer."""
    meta = body.get("include_meta")
    if meta is None:
        return False
    if not isinstance(meta, list) or len(meta) != 1:
        return _invalid(
            {
                "expected_data_type": "jsonarray",
                "api_name": "include_meta",
                "json_path": "$.include_meta",
            }
        )
    details: dict[str, Any] = {"api_name": "include_meta", "json_path": "$.include_meta[0]"}
    if not isinstance(meta[0], str):
        return _invalid({"expected_data_type": "text", **details, "supported_values": ["fields"]})
    if meta[0] not in INCLUDE_META_VALUES:
        return _invalid({**details, "supported_values": ["fields"]})
    return True


def can_read_module(access: AccessToken, module: str) -> bool:
    return has_scope(access, MODULES, "READ") or has_scope(access, f"{MODULES}.{module}", "READ")


async def post_coql(request: web.Request) -> web.Response:
    access = authorize(request, COQL, "READ")
    if isinstance(access, web.Response):
        return access
    try:
        body = await read_json(request)
    except BadJson:
        return crm_error(400, "INVALID_DATA", "body is not a valid JSON")
    if not isinstance(body, dict):
        return _invalid({"json_path": "$"})
    text = body.get("select_query")
    if text is None:
        return crm_error(
            400, "MANDATORY_NOT_FOUND", "mandatory key not found", {"api_name": "select_query"}
        )
    if not isinstance(text, str):
        return _invalid(
            {
                "expected_data_type": "text",
                "api_name": "select_query",
                "json_path": "$.select_query",
            }
        )
    with_fields = _include_meta(body)
    if isinstance(with_fields, web.Response):
        return with_fields
    if with_fields and not has_scope(access, FIELDS_META, "READ"):
        return scope_mismatch()
    try:
        query = coql.parse(text)
    except coql.CoqlError as exc:
        return _coql_error(exc)
    if query.module not in demo.CRM_MODULES:
        return _coql_error(
            coql.CoqlError("INVALID_MODULE", "the given module is not supported in api")
        )
    if not can_read_module(access, query.module):
        return scope_mismatch()
    # Zoho prices a COQL call by its LIMIT (merge glue: sandbox-records' credit counter).
    credits.charge(request, coql.credits_for(query))
    source = request.app.get(RECORDS_SOURCE, _no_records)

    def records_of(module: str) -> Iterable[Mapping[str, Any]]:
        return source(access, module)

    try:
        answer = coql.answer(query, records_of)
        if answer is not None and with_fields:
            answer["fields"] = coql.describe(query, records_of)
    except coql.CoqlError as exc:
        return _coql_error(exc)
    if answer is None:
        return web.Response(status=204)
    return json_response(answer)


def add_routes(app: web.Application) -> None:
    """Register before crm.add_routes: its `/crm/{tail}` catch-all would answer first."""
    app.router.add_resource("/crm/v8/coql", name="crm.coql").add_route("POST", post_coql)
