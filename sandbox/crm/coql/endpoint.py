"""CRM `POST /crm/v8/coql`: `{"select_query": "..."}` answered from the org's records (the
record store, sandbox/records/store.py) as zoho/crm-oas v8.0 coql says; parsing and evaluation
are syntax.py's and engine.py's. A call costs 1, 2 or 3 credits by its LIMIT (credits.charge)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

from aiohttp import web

from sandbox.auth import has_scope
from sandbox.credits import charge
from sandbox.crm.auth import authorize, authorize_module
from sandbox.crm.coql import engine as coql
from sandbox.demo import tenant as demo
from sandbox.errors import crm_error
from sandbox.http import BadJson, json_response, read_json, state_of
from sandbox.records.record_set import Record, RecordSet
from sandbox.records.store import crm_org_key
from sandbox.state import AccessToken, SandboxState

COQL = "ZohoCRM.coql"
FIELDS_META = "ZohoCRM.settings.fields"
INCLUDE_META_VALUES = ("fields",)

STORE_ORDER = ("Modified_Time", "id")


class ModifiedOrder(Sequence[Mapping[str, Any]]):
    """A module's records in the store's (modified, id) order, read through its key list
    without copying: COQL bisects it and reads one page from it."""

    def __init__(self, records: RecordSet) -> None:
        self._keys = records.view("modified")
        self._live: dict[int, Record] = records.live

    def __len__(self) -> int:
        return len(self._keys)

    @overload
    def __getitem__(self, index: int) -> Mapping[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Mapping[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self._live[record_id].data for _, record_id in self._keys[index]]
        return self._live[self._keys[index][1]].data

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        live = self._live
        return (live[record_id].data for _, record_id in self._keys)


def _source(
    state: SandboxState, access: AccessToken, query: coql.CoqlQuery
) -> tuple[Sequence[Mapping[str, Any]], tuple[str, ...]]:
    """The module's records and the order they come in: (Modified_Time, id) when the query
    orders by Modified_Time ascending (the key-paging read), else the store's id order."""
    org_key = crm_org_key(access.user)
    by_id = state.records.crm_records(org_key, query.module)  # seeds the demo org on first use
    first = query.order_by[0] if query.order_by else None
    if first is not None and first.field.name == "Modified_Time" and not first.descending:
        org = state.records.crm.get(org_key)
        records = org.modules.get(query.module) if org is not None else None
        if records is not None:
            return ModifiedOrder(records), STORE_ORDER
    return by_id, ("id",)


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
    # And the module's own read scope, as Get Records checks it.
    reader = authorize_module(request, query.module)
    if isinstance(reader, web.Response):
        return reader
    charge(request, coql.credits_for(query))
    records, order = _source(state_of(request), access, query)

    def records_of(_module: str) -> Sequence[Mapping[str, Any]]:
        return records

    try:
        answer = coql.answer(query, records_of, presorted_by=order)
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
