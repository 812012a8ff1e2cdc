"""CRM Get Records and deleted records where zoho/crm-oas v8.0 (record.json, getRecords,
getDeletedRecords and their examples) says what to answer: shapes, limits, page tokens,
If-Modified-Since, errors. Example bodies below are transcribed from the spec."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from sandbox.control_client import SandboxControl
from tests.sandbox.conftest import access_token, auth

LEADS = "/crm/v8/Leads"
# getRecords' RecordGETSuccessResponse: info's required keys, and the example's extra two.
INFO_KEYS = set(
    "page per_page count more_records sort_by sort_order next_page_token "
    "previous_page_token page_token_expiry call email".split()
)
# The examples' error bodies (response-400-*.md, response-401-scopemismatch.md).
DISCRETE = {
    "code": "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
    "message": "You can only get the first 2000 records without using page_token param",
    "status": "error",
    "details": {"limit": 2000},
}
EXPIRED = {
    "status": "error",
    "code": "EXPIRED_VALUE",
    "message": "Page token expired",
    "details": {"api_name": "page_token", "json_path": "$.query.page_token"},
}
MISMATCH = {
    "code": "TOKEN_BOUND_DATA_MISMATCH",
    "message": "The page_token given seems to be invalid or input param is added or altered "
    "or deleted",
    "status": "error",
    "details": {"param_name": "page_token"},
}
PAGINATION = {
    "code": "PAGINATION_LIMIT_EXCEEDED",
    "message": "You can only get upto 100000 records using page_token param",
    "status": "error",
    "details": {"param_name": "page_token"},
}
FIELDS_MISSING = {
    "code": "REQUIRED_PARAM_MISSING",
    "status": "error",
    "details": {"param_name": "fields"},
    "message": "required param is missing",
}
FIELDS_LIMIT = {
    "code": "LIMIT_EXCEEDED",
    "details": {"limit": 50, "param_name": "fields"},
    "message": "limit exceeded",
    "status": "error",
}
INVALID_MODULE = {
    "code": "INVALID_MODULE",
    "details": {"resource_path_index": 0},
    "message": "the module name given seems to be invalid",
    "status": "error",
}
SCOPE = {
    "code": "OAUTH_SCOPE_MISMATCH",
    "message": "Unauthorized",
    "status": "error",
    "details": {},
}


@pytest.fixture
async def token(sandbox: SandboxControl, http: httpx.AsyncClient) -> str:
    return await access_token(http, sandbox)


async def _get(http, sb, token, path=LEADS, headers=None, **params: Any) -> httpx.Response:
    return await http.get(
        f"{sb.origin}{path}", params=params, headers={**auth(token), **(headers or {})}
    )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).isoformat()


async def test_a_page_has_the_spec_shape(sandbox, http, token):
    response = await _get(http, sandbox, token, fields="Last_Name,Email,Owner", per_page=5)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "info"}
    assert set(body["info"]) == INFO_KEYS
    info = body["info"]
    assert (info["per_page"], info["count"], info["page"], info["more_records"]) == (5, 5, 1, True)
    # The spec example's defaults: sort by id, descending.
    assert (info["sort_by"], info["sort_order"]) == ("id", "desc")
    assert info["previous_page_token"] is None and info["next_page_token"]
    assert datetime.fromisoformat(info["page_token_expiry"]).tzinfo is not None
    ids = [r["id"] for r in body["data"]]
    assert all(isinstance(i, str) and len(i) == 19 for i in ids)
    assert ids == sorted(ids, reverse=True)
    record = body["data"][0]
    assert set(record) == {"id", "Last_Name", "Email", "Owner"}
    assert set(record["Owner"]) == {"id", "name", "email"}


async def test_times_are_iso_with_offset_to_the_second(sandbox, http, token):
    body = (await _get(http, sandbox, token, fields="Created_Time,Modified_Time")).json()
    for record in body["data"]:
        for name in ("Created_Time", "Modified_Time"):
            parsed = datetime.fromisoformat(record[name])
            assert parsed.utcoffset() is not None and parsed.microsecond == 0
            assert record[name].endswith("+00:00")


async def test_required_fields_and_their_limit(sandbox, http, token):
    missing = await _get(http, sandbox, token)
    assert (missing.status_code, missing.json()) == (400, FIELDS_MISSING)
    many = await _get(http, sandbox, token, fields=",".join(f"F{i}" for i in range(51)))
    assert (many.status_code, many.json()) == (400, FIELDS_LIMIT)
    fifty = await _get(http, sandbox, token, fields=",".join(f"F{i}" for i in range(50)))
    assert fifty.status_code == 200


async def test_unknown_module_and_bad_sort(sandbox, http, token):
    unknown = await _get(http, sandbox, token, path="/crm/v8/Widgets", fields="id")
    assert (unknown.status_code, unknown.json()) == (400, INVALID_MODULE)
    bad = await _get(http, sandbox, token, fields="id", sort_by="Name")
    assert bad.status_code == 400
    assert bad.json()["details"] == {
        "param_name": "sort_by",
        "supported_values": ["id", "Created_Time", "Modified_Time"],
    }
    too_big = await _get(http, sandbox, token, fields="id", per_page=201)
    assert too_big.status_code == 400


async def test_page_reaches_only_the_first_2000(sandbox, http, token):
    tenth = await _get(http, sandbox, token, fields="id", per_page=200, page=10)
    assert tenth.status_code == 204  # 300 records: nothing on page 10, but allowed
    eleventh = await _get(http, sandbox, token, fields="id", per_page=200, page=11)
    assert (eleventh.status_code, eleventh.json()) == (400, DISCRETE)
    small = await _get(http, sandbox, token, fields="id", per_page=10, page=201)
    assert small.json() == DISCRETE


async def _all_by_token(http, sb, token, **params: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    page_token = None
    while True:
        extra = {"page_token": page_token} if page_token else {}
        response = await _get(http, sb, token, **params, **extra)
        assert response.status_code == 200, response.text
        body = response.json()
        seen.extend(body["data"])
        if not body["info"]["more_records"]:
            return seen
        page_token = body["info"]["next_page_token"]


async def test_page_tokens_walk_every_record_in_modified_order(sandbox, http, token):
    params = {
        "fields": "Modified_Time",
        "per_page": 40,
        "sort_by": "Modified_Time",
        "sort_order": "asc",
    }
    seen = await _all_by_token(http, sandbox, token, **params)
    assert len(seen) == 300 == len({r["id"] for r in seen})
    keys = [(datetime.fromisoformat(r["Modified_Time"]), r["id"]) for r in seen]
    assert keys == sorted(keys)


async def test_a_token_is_bound_to_its_parameters(sandbox, http, token):
    first = await _get(http, sandbox, token, fields="Last_Name", per_page=10)
    page_token = first.json()["info"]["next_page_token"]
    for changed in (
        {"fields": "Email", "per_page": 10},
        {"fields": "Last_Name", "per_page": 20},
        {"fields": "Last_Name", "per_page": 10, "sort_order": "asc"},
    ):
        response = await _get(http, sandbox, token, page_token=page_token, **changed)
        assert (response.status_code, response.json()) == (400, MISMATCH)
    made_up = await _get(http, sandbox, token, fields="Last_Name", per_page=10, page_token="x")
    assert made_up.json() == MISMATCH
    same = await _get(http, sandbox, token, fields="Last_Name", per_page=10, page_token=page_token)
    assert same.status_code == 200
    assert same.json()["info"]["page"] == 2


async def test_a_token_expires(sandbox, http, token):
    first = await _get(http, sandbox, token, fields="id", per_page=10)
    info = first.json()["info"]
    expiry = datetime.fromisoformat(info["page_token_expiry"]).timestamp()
    await sandbox.advance_clock(expiry - await sandbox.now() + 1)
    token = await access_token(http, sandbox)  # the old one expired too
    late = await _get(
        http, sandbox, token, fields="id", per_page=10, page_token=info["next_page_token"]
    )
    assert (late.status_code, late.json()) == (400, EXPIRED)


async def test_tokens_stop_at_the_record_limit(sandbox, http, token):
    await sandbox.configure(crm_page_token_record_limit=100)
    page_token, served = None, 0
    while True:
        extra = {"page_token": page_token} if page_token else {}
        response = await _get(http, sandbox, token, fields="id", per_page=30, **extra)
        if response.status_code != 200:
            break
        served += response.json()["info"]["count"]
        page_token = response.json()["info"]["next_page_token"]
    assert served == 100
    assert (response.status_code, response.json()) == (400, PAGINATION)


async def test_if_modified_since_is_inclusive_to_the_second(sandbox, http, token):
    [changed] = (await sandbox.records("crm", "Leads", full=True))["records"][:1]
    at = await sandbox.now()
    await sandbox.change_records(
        "crm", "Leads", "update", [{"id": changed["id"], "values": {"Company": "Acme"}}], at=at
    )
    since = {"If-Modified-Since": _iso(at)}
    body = (await _get(http, sandbox, token, headers=since, fields="Company")).json()
    assert [(r["id"], r["Company"]) for r in body["data"]] == [(changed["id"], "Acme")]
    await sandbox.configure(crm_if_modified_since="after")
    assert (await _get(http, sandbox, token, headers=since, fields="id")).status_code == 204
    await sandbox.configure(crm_not_modified_304=True)
    assert (await _get(http, sandbox, token, headers=since, fields="id")).status_code == 304
    bad = await _get(http, sandbox, token, headers={"If-Modified-Since": "yesterday"}, fields="id")
    assert bad.status_code == 400


async def test_ids_pick_records(sandbox, http, token):
    listed = (await _get(http, sandbox, token, fields="id", per_page=3)).json()["data"]
    wanted = [r["id"] for r in listed[:2]]
    picked = await _get(http, sandbox, token, fields="Last_Name", ids=",".join(wanted))
    assert sorted(r["id"] for r in picked.json()["data"]) == sorted(wanted)
    assert (await _get(http, sandbox, token, fields="id", ids="1")).status_code == 204


@pytest.mark.parametrize(
    ("scopes", "allowed"),
    [
        (["ZohoCRM.modules.READ"], True),
        (["ZohoCRM.modules.all"], True),
        (["ZohoCRM.modules.Leads.READ"], True),
        (["ZohoCRM.modules.Contacts.READ"], False),
        (["ZohoCRM.notifications.READ"], False),
    ],
)
async def test_scopes_as_zoho_checks_them(sandbox, http, scopes, allowed):
    refresh = await sandbox.add_refresh_token(scopes=scopes)
    token = await access_token(http, sandbox, refresh)
    for path in (LEADS, LEADS + "/deleted"):
        response = await _get(http, sandbox, token, path=path, fields="id")
        if allowed:
            assert response.status_code in (200, 204)
        else:
            assert (response.status_code, response.json()) == (401, SCOPE)


# ---- deleted records -------------------------------------------------------------------

# getDeletedRecords' example: the keys of every item, and a permanent one's nulls.
DELETED_KEYS = {"deleted_by", "id", "display_name", "type", "created_by", "deleted_time"}


async def test_deleted_records_as_the_example_shows_them(sandbox, http, token):
    leads = (await sandbox.records("crm", "Leads", full=True))["records"]
    binned, gone = leads[0], leads[1]
    await sandbox.change_records("crm", "Leads", "delete", [binned["id"]])
    await sandbox.change_records("crm", "Leads", "delete", [gone["id"]], permanent=True)
    response = await _get(http, sandbox, token, path=LEADS + "/deleted")
    assert response.status_code == 200
    body = response.json()
    assert body["info"] == {"per_page": 200, "count": 2, "page": 1, "more_records": False}
    recycle, permanent = body["data"]
    assert set(recycle) == set(permanent) == DELETED_KEYS
    assert recycle["id"] == binned["id"] and recycle["type"] == "recycle"
    assert recycle["display_name"] == binned["Last_Name"]
    assert set(recycle["deleted_by"]) == set(recycle["created_by"]) == {"name", "id"}
    assert permanent == {
        **permanent,
        "id": gone["id"],
        "type": "permanent",
        "deleted_by": None,
        "created_by": None,
        "display_name": None,
    }
    assert datetime.fromisoformat(permanent["deleted_time"]).tzinfo is not None
    only = await _get(http, sandbox, token, path=LEADS + "/deleted", type="permanent")
    assert [d["id"] for d in only.json()["data"]] == [gone["id"]]
    # Gone from Get Records.
    ids = {r["id"] for r in await _all_by_token(http, sandbox, token, fields="id")}
    assert binned["id"] not in ids and gone["id"] not in ids and len(ids) == 298
    await sandbox.configure(crm_deleted_permanent_users="objects")
    again = (await _get(http, sandbox, token, path=LEADS + "/deleted", type="permanent")).json()
    assert again["data"][0]["created_by"] is not None


async def test_deleted_records_paging_since_and_errors(sandbox, http, token):
    assert (await _get(http, sandbox, token, path=LEADS + "/deleted")).status_code == 204
    leads = (await sandbox.records("crm", "Leads", full=True))["records"]
    now = await sandbox.now()
    await sandbox.change_records(
        "crm", "Leads", "delete", [r["id"] for r in leads[:3]], at=now - 3600
    )
    await sandbox.change_records("crm", "Leads", "delete", [leads[3]["id"]], at=now)
    page = await _get(http, sandbox, token, path=LEADS + "/deleted", per_page=2, page=2)
    assert page.json()["info"] == {"per_page": 2, "count": 2, "page": 2, "more_records": False}
    recent = await _get(
        http, sandbox, token, path=LEADS + "/deleted", headers={"If-Modified-Since": _iso(now)}
    )
    assert [d["id"] for d in recent.json()["data"]] == [leads[3]["id"]]
    bad = await _get(http, sandbox, token, path=LEADS + "/deleted", type="trash")
    # getDeletedRecords' response-400-patternnotmatched example.
    pattern = {
        "code": "PATTERN_NOT_MATCHED",
        "details": {"param_name": "type"},
        "message": "Please check whether the input values are correct",
        "status": "error",
    }
    assert (bad.status_code, bad.json()) == (400, {"data": [pattern]})
    unknown = await _get(http, sandbox, token, path="/crm/v8/Widgets/deleted")
    assert unknown.json() == {"data": [INVALID_MODULE]}
