"""`POST /crm/v8/coql` over HTTP, checked against zoho/crm-oas v8.0 coql's examples
(operations/executeCOQLQuery/examples, transcribed below), its scopes and its limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from sandbox.app import create_app, format_origin, seed
from sandbox.control_client import SandboxControl
from sandbox.crm_coql import RECORDS_SOURCE
from sandbox.http import STATE_KEY
from tests.sandbox.conftest import access_token, auth
from tests.sandbox.coql_records import leads

COQL = "/crm/v8/coql"
READ_SCOPES = ["ZohoCRM.coql.READ", "ZohoCRM.modules.READ"]
RECORDS = {"Leads": leads(2500), "Contacts": []}
W = " where id is not null"

# ---- the spec's examples (v8.0/coql/operations/executeCOQLQuery/examples) --------------------
SUCCESS = {
    "data": [{"Last_Name": "Smith", "First_Name": "John"}],
    "info": {"count": 1, "more_records": False},
}
SUCCESS_WITH_FIELDS_KEYS = {"data", "fields", "info"}
ERRORS: dict[str, dict[str, Any]] = {
    "SyntaxErrorInvalidClause": {
        "code": "SYNTAX_ERROR",
        "details": {"clause": "where"},
        "message": "missing clause",
        "status": "error",
    },
    "SyntaxErrorLocation": {
        "code": "SYNTAX_ERROR",
        "details": {"line": 1, "column": 15, "near": "FROM"},
        "message": "unexpected token",
        "status": "error",
    },
    "SyntaxErrorOperator": {
        "code": "SYNTAX_ERROR",
        "details": {"operator": "not"},
        "message": "operator not supported",
        "status": "error",
    },
    "SyntaxErrorQueryNotSupported": {
        "code": "SYNTAX_ERROR",
        "details": {},
        "message": "given coql query not supported",
        "status": "error",
    },
    "SyntaxErrorNear": {
        "code": "SYNTAX_ERROR",
        "details": {"near": "where"},
        "message": "error occured while parsing the query",
        "status": "error",
    },
    "InvalidQueryInvalidOperator": {
        "code": "INVALID_QUERY",
        "details": {
            "reason": "invalid operator found",
            "column_name": "First_Name",
            "operator": ">",
        },
        "message": "Invalid query formed",
        "status": "error",
    },
    "MandatoryNotFound": {
        "code": "MANDATORY_NOT_FOUND",
        "details": {"api_name": "select_query"},
        "message": "mandatory key not found",
        "status": "error",
    },
    "DuplicateData": {
        "code": "DUPLICATE_DATA",
        "details": {"column_name": "First_Name"},
        "message": "duplicate select column",
        "status": "error",
    },
    "InvalidQueryInvalidLimit": {
        "code": "INVALID_QUERY",
        "details": {"limit": "s"},
        "message": "limit given seems to be invalid",
        "status": "error",
    },
    "InvalidQueryEmptyDetails": {
        "code": "INVALID_QUERY",
        "details": {},
        "message": "Invalid query formed",
        "status": "error",
    },
    "InvalidData": {
        "code": "INVALID_DATA",
        "details": {
            "expected_data_type": "jsonarray",
            "api_name": "include_meta",
            "json_path": "$.include_meta",
        },
        "message": "invalid data",
        "status": "error",
    },
    "InvalidDataSupportedValues": {
        "code": "INVALID_DATA",
        "details": {
            "api_name": "include_meta",
            "json_path": "$.include_meta[0]",
            "supported_values": ["fields"],
        },
        "message": "invalid data",
        "status": "error",
    },
    "InvalidDataUnsupportedFunction": {
        "code": "INVALID_DATA",
        "details": {
            "reason": "unsupported aggregate function",
            "column": "TestFunction(Last_Name)",
        },
        "message": "invalid data",
        "status": "error",
    },
    "InvalidDataExpectedTypeWithSupportedValues": {
        "code": "INVALID_DATA",
        "details": {
            "expected_data_type": "text",
            "api_name": "include_meta",
            "json_path": "$.include_meta[0]",
            "supported_values": ["fields"],
        },
        "message": "invalid data",
        "status": "error",
    },
    "InvalidDataLimitZero": {
        "code": "INVALID_DATA",
        "details": {},
        "message": "limit should be greater than 0",
        "status": "error",
    },
    "InvalidModule": {
        "code": "INVALID_MODULE",
        "details": {},
        "message": "the given module is not supported in api",
        "status": "error",
    },
}


def _shape(value: Any) -> Any:
    """Keys and JSON types, not values: what two answers must share to be the same shape."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


@pytest.fixture
async def coql_origin() -> AsyncIterator[str]:
    """The sandbox app in-process, its COQL reading RECORDS."""
    app = create_app()
    app[RECORDS_SOURCE] = lambda _access, module: RECORDS[module]
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        origin = format_origin("127.0.0.1", runner.addresses[0][1])
        app[STATE_KEY].origin = origin
        seed(app, with_demo=True)
        yield origin
    finally:
        await runner.cleanup()


@pytest.fixture
async def control(coql_origin: str) -> AsyncIterator[SandboxControl]:
    async with SandboxControl(coql_origin) as sb:
        yield sb


async def _token(http: httpx.AsyncClient, sb: SandboxControl, scopes: list[str]) -> str:
    return await access_token(http, sb, await sb.add_refresh_token(scopes=scopes))


@pytest.fixture
async def token(control: SandboxControl, http: httpx.AsyncClient) -> str:
    return await _token(http, control, READ_SCOPES)


async def _post(http, sb, token, body: Any) -> httpx.Response:
    return await http.post(f"{sb.origin}{COQL}", json=body, headers=auth(token))


async def _query(http, sb, token, text: str, **extra: Any) -> httpx.Response:
    return await _post(http, sb, token, {"select_query": text, **extra})


async def test_success_has_the_spec_shape(control, http, token):
    response = await _query(
        http, control, token, "select Last_Name, First_Name from Leads where Last_Name = 'Lead 1'"
    )
    assert response.status_code == 200
    body = response.json()
    assert {k: v for k, v in _shape(body).items()} == {
        "data": [{**_shape(SUCCESS["data"][0]), "id": "str"}],
        "info": _shape(SUCCESS["info"]),
    }
    assert body["info"]["count"] == len(body["data"]) <= 200


async def test_fields_meta_needs_its_scope_and_has_the_spec_keys(control, http, token):
    text = "select Last_Name from Leads where Last_Name = 'Lead 1'"
    denied = await _query(http, control, token, text, include_meta=["fields"])
    assert (denied.status_code, denied.json()["code"]) == (401, "OAUTH_SCOPE_MISMATCH")
    meta_token = await _token(http, control, [*READ_SCOPES, "ZohoCRM.settings.fields.READ"])
    response = await _query(http, control, meta_token, text, include_meta=["fields"])
    assert set(response.json()) == SUCCESS_WITH_FIELDS_KEYS
    assert response.json()["fields"]["Last_Name"]["api_name"] == "Last_Name"


async def test_nothing_matching_is_204_with_no_body(control, http, token):
    response = await _query(http, control, token, "select id from Leads where Company = 'Nobody'")
    assert (response.status_code, response.content) == (204, b"")
    empty = await _query(http, control, token, "select id from Contacts" + W)
    assert empty.status_code == 204


@pytest.mark.parametrize(
    ("example", "body"),
    [
        ("SyntaxErrorInvalidClause", {"select_query": "select Last_Name from Leads"}),
        ("SyntaxErrorOperator", {"select_query": "select id from Leads where not Last_Name = 'a'"}),
        ("SyntaxErrorQueryNotSupported", {"select_query": "delete from Leads where id = '1'"}),
        (
            "InvalidQueryInvalidOperator",
            {"select_query": "select First_Name from Leads where First_Name > 'a'"},
        ),
        ("MandatoryNotFound", {"query": "select id from Leads"}),
        ("DuplicateData", {"select_query": "select First_Name, First_Name from Leads" + W}),
        ("InvalidQueryInvalidLimit", {"select_query": "select id from Leads" + W + " limit s"}),
        ("InvalidQueryEmptyDetails", {"select_query": " "}),
        ("InvalidData", {"select_query": "select id from Leads" + W, "include_meta": "fields"}),
        (
            "InvalidDataSupportedValues",
            {"select_query": "select id from Leads" + W, "include_meta": ["layouts"]},
        ),
        (
            "InvalidDataUnsupportedFunction",
            {"select_query": "select TestFunction(Last_Name) from Leads" + W},
        ),
        (
            "InvalidDataExpectedTypeWithSupportedValues",
            {"select_query": "select id from Leads" + W, "include_meta": [1]},
        ),
        ("InvalidDataLimitZero", {"select_query": "select id from Leads" + W + " limit 0"}),
        ("InvalidModule", {"select_query": "select id from Leads_X" + W}),
    ],
)
async def test_errors_are_the_spec_examples(
    control, http, token, example: str, body: dict[str, Any]
):
    response = await _post(http, control, token, body)
    assert response.status_code == 400
    assert response.json() == ERRORS[example]


@pytest.mark.parametrize(
    ("example", "text"),
    [
        ("SyntaxErrorLocation", "select Last_Name, FROM Leads" + W),
        (
            "SyntaxErrorNear",
            "select id from Leads where id is not null and Company = 'a' or Company = 'b'",
        ),
    ],
)
async def test_errors_have_the_spec_example_shape(control, http, token, example: str, text: str):
    response = await _query(http, control, token, text)
    assert response.status_code == 400
    assert _shape(response.json()) == _shape(ERRORS[example])
    assert response.json()["code"] == ERRORS[example]["code"]


async def test_the_2000_limit_and_the_100000_cap(control, http, token):
    page = await _query(http, control, token, "select id from Leads" + W + " limit 2000")
    assert page.status_code == 200
    assert page.json()["info"] == {"count": 2000, "more_records": True}
    over = await _query(http, control, token, "select id from Leads" + W + " limit 2001")
    assert (over.status_code, over.json()["code"], over.json()["details"]) == (
        400,
        "LIMIT_EXCEEDED",
        {"clause": "limit", "limit": 2000},
    )
    past = await _query(http, control, token, "select id from Leads" + W + " limit 98001, 2000")
    assert (past.status_code, past.json()["code"], past.json()["details"]) == (
        400,
        "LIMIT_EXCEEDED",
        {"clause": "offset", "limit": 100000},
    )
    last = await _query(
        http, control, token, "select id from Leads" + W + " limit 2000 offset 2000"
    )
    assert last.json()["info"] == {"count": 500, "more_records": False}


@pytest.mark.parametrize(
    ("scopes", "status"),
    [
        (["ZohoCRM.coql.READ", "ZohoCRM.modules.READ"], 200),
        (["ZohoCRM.coql.READ", "ZohoCRM.modules.ALL"], 200),
        (["ZohoCRM.coql.READ", "ZohoCRM.modules.Leads.READ"], 200),
        (["ZohoCRM.coql.read", "zohocrm.modules.leads.all"], 200),
        (["ZohoCRM.coql.READ", "ZohoCRM.modules.Contacts.READ"], 401),
        (["ZohoCRM.coql.READ"], 401),
        (["ZohoCRM.modules.READ"], 401),
        (["ZohoCRM.notifications.READ"], 401),
    ],
)
async def test_scopes(control, http, scopes: list[str], status: int):
    token = await _token(http, control, scopes)
    response = await _query(http, control, token, "select id from Leads" + W + " limit 1")
    assert response.status_code == status
    if status == 401:
        assert response.json() == {
            "code": "OAUTH_SCOPE_MISMATCH",
            "details": {},
            "message": "invalid oauth scope to access this URL",
            "status": "error",
        }


async def test_no_token_and_a_dead_token(control, http, token):
    bare = await http.post(
        f"{control.origin}{COQL}", json={"select_query": "select id from Leads" + W}
    )
    assert (bare.status_code, bare.json()["code"]) == (401, "INVALID_TOKEN")
    await control.invalidate_access_token(token)
    dead = await _query(http, control, token, "select id from Leads" + W)
    assert (dead.status_code, dead.json()["code"]) == (401, "INVALID_TOKEN")


async def test_bad_bodies(control, http, token):
    raw = await http.post(f"{control.origin}{COQL}", content=b"{nope", headers=auth(token))
    assert (raw.status_code, raw.json()["code"]) == (400, "INVALID_DATA")
    typed = await _post(http, control, token, {"select_query": 5})
    assert typed.json()["details"] == {
        "expected_data_type": "text",
        "api_name": "select_query",
        "json_path": "$.select_query",
    }


async def test_calls_are_recorded_as_crm_coql(control, http, token):
    await _query(http, control, token, "select id from Leads" + W)
    [call] = await control.calls("crm.coql")
    assert (call.method, call.status, call.token) == ("POST", 200, token)
