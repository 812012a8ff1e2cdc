"""CRM `/crm/v8`: watch GET paging and filters, writes with item-level errors, users, auth."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox.control_client import SandboxControl
from tests.sandbox.conftest import access_token, auth

WATCH = "/crm/v8/actions/watch"


@pytest.fixture
async def token(sandbox: SandboxControl, http: httpx.AsyncClient) -> str:
    return await access_token(http, sandbox)


async def _get(http: httpx.AsyncClient, sb: SandboxControl, token: str, **params: Any):
    return await http.get(f"{sb.origin}{WATCH}", params=params, headers=auth(token))


def _item(channel_id: str = "2000001", **extra: Any) -> dict[str, Any]:
    return {
        "channel_id": channel_id,
        "events": ["Deals.create", "Deals.edit"],
        "notify_url": "https://app.example/hook",
        "token": "s3cret",
        **extra,
    }


async def test_demo_items_over_two_pages(sandbox: SandboxControl, http, token):
    first = await _get(http, sandbox, token)
    assert first.status_code == 200
    body = first.json()
    assert body["info"] == {"per_page": 200, "count": 200, "page": 1, "more_records": True}
    second = (await _get(http, sandbox, token, page=2)).json()
    assert second["info"] == {"per_page": 200, "count": 50, "page": 2, "more_records": False}
    items = body["watch"] + second["watch"]
    assert len(items) == 250
    assert {i["resource_name"] for i in items} == {
        "Leads",
        "Contacts",
        "Accounts",
        "Deals",
        "Tasks",
    }
    # One channel over several modules: one item per module, same channel_id.
    assert [i["resource_name"] for i in items if i["channel_id"] == "1000000068001"] == [
        "Leads",
        "Contacts",
        "Accounts",
        "Deals",
        "Tasks",
    ]
    expected_fields = {
        "channel_id",
        "events",
        "channel_expiry",
        "notify_url",
        "token",
        "resource_uri",
        "resource_id",
        "resource_name",
        "notify_on_related_action",
        "return_affected_field_values",
        "fields",
        "notification_condition",
    }
    assert all(set(i) == expected_fields for i in items)
    assert items[0]["resource_uri"] == f"{sandbox.origin}/crm/v8/Leads"
    # Deterministic content: the same after a reset.
    await sandbox.reset()
    again = await access_token(http, sandbox)
    assert (await _get(http, sandbox, again)).json()["watch"][5]["events"] == body["watch"][5][
        "events"
    ]


async def test_past_the_end_is_204_empty(sandbox: SandboxControl, http, token):
    response = await _get(http, sandbox, token, page=3)
    assert response.status_code == 204
    assert response.content == b""


async def test_filters_and_per_page(sandbox: SandboxControl, http, token):
    deals = (await _get(http, sandbox, token, module="Deals", per_page=20)).json()
    assert deals["info"] == {"per_page": 20, "count": 20, "page": 1, "more_records": True}
    assert {i["resource_name"] for i in deals["watch"]} == {"Deals"}
    one = (await _get(http, sandbox, token, channel_id="1000000068002")).json()
    assert len(one["watch"]) == 5
    both = (await _get(http, sandbox, token, channel_id="1000000068002", module="Tasks")).json()
    assert [(i["channel_id"], i["resource_name"]) for i in both["watch"]] == [
        ("1000000068002", "Tasks")
    ]
    nothing = await _get(http, sandbox, token, channel_id="999")
    assert nothing.status_code == 204


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"per_page": 201}, "INVALID_DATA"),
        ({"per_page": 0}, "INVALID_DATA"),
        ({"page": "x"}, "INVALID_DATA"),
        ({"module": "Nope"}, "INVALID_MODULE"),
        ({"channel_id": "abc"}, "INVALID_DATA"),
    ],
)
async def test_bad_query_params(sandbox: SandboxControl, http, token, params, code):
    response = await _get(http, sandbox, token, **params)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert response.json()["status"] == "error"


async def test_empty_org_is_204(sandbox: SandboxControl, http: httpx.AsyncClient):
    rt = await sandbox.add_refresh_token(user="empty")
    response = await _get(http, sandbox, await access_token(http, sandbox, rt))
    assert response.status_code == 204


async def test_bulk_seed_430(sandbox: SandboxControl, http: httpx.AsyncClient):
    rt = await sandbox.add_refresh_token(user="big")
    assert await sandbox.seed_crm_channels("big", count=430) == 430
    token = await access_token(http, sandbox, rt)
    pages = [(await _get(http, sandbox, token, page=p)).json() for p in (1, 2, 3)]
    assert [p["info"]["count"] for p in pages] == [200, 200, 30]
    assert pages[2]["info"]["more_records"] is False


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "INVALID_TOKEN"),
        ({"Authorization": "Zoho-oauthtoken 1000.unknown.token"}, "INVALID_TOKEN"),
        ({"Authorization": "Bearer whatever"}, "INVALID_TOKEN"),
    ],
)
async def test_bad_tokens_are_401(sandbox: SandboxControl, http, headers, code):
    response = await http.get(f"{sandbox.origin}{WATCH}", headers=headers)
    assert response.status_code == 401
    assert response.json() == {
        "code": code,
        "details": {},
        "message": "invalid oauth token",
        "status": "error",
    }


async def test_scope_mismatch(sandbox: SandboxControl, http: httpx.AsyncClient):
    rt = await sandbox.add_refresh_token(scopes=["ZohoCRM.notifications.READ"])
    token = await access_token(http, sandbox, rt)
    assert (await _get(http, sandbox, token)).status_code == 200
    response = await http.post(
        f"{sandbox.origin}{WATCH}", json={"watch": [_item()]}, headers=auth(token)
    )
    assert response.status_code == 401
    assert response.json()["code"] == "OAUTH_SCOPE_MISMATCH"
    users = await http.get(f"{sandbox.origin}/crm/v8/users", headers=auth(token))
    assert users.json()["code"] == "OAUTH_SCOPE_MISMATCH"


async def test_all_scope_covers_every_operation(sandbox: SandboxControl, http: httpx.AsyncClient):
    rt = await sandbox.add_refresh_token(scopes=["ZohoCRM.notifications.ALL"])
    token = await access_token(http, sandbox, rt)
    created = await http.post(
        f"{sandbox.origin}{WATCH}", json={"watch": [_item()]}, headers=auth(token)
    )
    assert created.status_code == 201


async def test_post_creates_items_per_module(sandbox: SandboxControl, http, token):
    item = _item(events=["Deals.create", "Leads.edit"], channel_expiry=None)
    del item["channel_expiry"]
    response = await http.post(
        f"{sandbox.origin}{WATCH}", json={"watch": [item]}, headers=auth(token)
    )
    assert response.status_code == 201
    [result] = response.json()["watch"]
    assert result["code"] == "SUCCESS"
    assert result["status"] == "success"
    assert [e["resource_name"] for e in result["details"]["events"]] == ["Deals", "Leads"]
    got = (await _get(http, sandbox, token, channel_id="2000001")).json()["watch"]
    assert [(i["resource_name"], i["events"], i["token"]) for i in got] == [
        ("Deals", ["Deals.create"], "s3cret"),
        ("Leads", ["Leads.edit"], "s3cret"),
    ]


async def test_post_partial_is_207_with_item_errors(sandbox: SandboxControl, http, token):
    bad = _item("2000002")
    del bad["channel_id"]
    response = await http.post(
        f"{sandbox.origin}{WATCH}", json={"watch": [_item("2000001"), bad]}, headers=auth(token)
    )
    assert response.status_code == 207
    ok, failed = response.json()["watch"]
    assert ok["status"] == "success"
    assert failed == {
        "code": "MANDATORY_NOT_FOUND",
        "details": {"api_name": "channel_id", "json_path": "$.watch[1].channel_id"},
        "message": "required field not found",
        "status": "error",
    }


async def test_post_all_failed_is_400(sandbox: SandboxControl, http, token):
    response = await http.post(
        f"{sandbox.origin}{WATCH}",
        json={"watch": [_item(events=["Nope.create"]), _item(events=["Deals.fly"])]},
        headers=auth(token),
    )
    assert response.status_code == 400
    codes = [r["code"] for r in response.json()["watch"]]
    assert codes == ["INVALID_MODULE", "INVALID_DATA"]


async def test_post_limits(sandbox: SandboxControl, http, token):
    url = f"{sandbox.origin}{WATCH}"
    too_many = await http.post(
        url, json={"watch": [_item(str(3000000 + i)) for i in range(51)]}, headers=auth(token)
    )
    assert too_many.status_code == 400
    assert too_many.json()["code"] == "INVALID_DATA"
    fifty = await http.post(
        url, json={"watch": [_item(str(3000000 + i)) for i in range(50)]}, headers=auth(token)
    )
    assert fifty.status_code == 201
    modules = ["Leads", "Contacts", "Accounts", "Deals", "Tasks", "Events", "Calls"]
    modules += ["Products", "Quotes", "Sales_Orders", "Purchase_Orders", "Invoices", "Campaigns"]
    events = [f"{m}.{op}" for m in modules for op in ("create", "edit", "delete", "all")]
    fifty_events = await http.post(
        url, json={"watch": [_item("3100000", events=events[:50])]}, headers=auth(token)
    )
    assert fifty_events.status_code == 201
    too_many_events = await http.post(
        url, json={"watch": [_item("3100001", events=events[:51])]}, headers=auth(token)
    )
    [refused] = too_many_events.json()["watch"]
    assert refused["details"] == {
        "api_name": "events",
        "json_path": "$.watch[0].events",
        "maximum_length": 50,
    }


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "INVALID_DATA"),
        (b"", "INVALID_DATA"),
        (b"[1, 2]", "INVALID_DATA"),
        (b'{"other": []}', "MANDATORY_NOT_FOUND"),
        (b'{"watch": {}}', "INVALID_DATA"),
        (b'{"watch": ["x"]}', "INVALID_DATA"),
    ],
)
async def test_malformed_bodies(sandbox: SandboxControl, http, token, content, code):
    response = await http.post(
        f"{sandbox.origin}{WATCH}",
        content=content,
        headers=auth(token, **{"Content-Type": "application/json"}),
    )
    assert response.status_code == 400
    body = response.json()
    first = body["watch"][0] if "watch" in body else body
    assert first["code"] == code


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("channel_id", "12ab"),
        ("channel_id", "1" * 65),
        ("notify_url", "ftp://x"),
        ("events", "Deals.create"),
        ("token", "x" * 257),
        ("channel_expiry", "2020-01-01T00:00:00+00:00"),
        ("channel_expiry", "not a date"),
        ("notify_on_related_action", "yes"),
    ],
)
async def test_wrong_types_are_invalid_data(sandbox: SandboxControl, http, token, field, value):
    response = await http.post(
        f"{sandbox.origin}{WATCH}", json={"watch": [_item(**{field: value})]}, headers=auth(token)
    )
    assert response.status_code == 400
    [result] = response.json()["watch"]
    assert result["code"] == "INVALID_DATA"
    assert result["details"]["api_name"] == field


async def test_put_replaces_and_requires_fields(sandbox: SandboxControl, http, token):
    url = f"{sandbox.origin}{WATCH}"
    replaced = await http.put(
        url,
        json={"watch": [_item("1000000068001", events=["Deals.delete"])]},
        headers=auth(token),
    )
    assert replaced.status_code == 200
    got = (await _get(http, sandbox, token, channel_id="1000000068001")).json()["watch"]
    assert [(i["resource_name"], i["events"]) for i in got] == [("Deals", ["Deals.delete"])]
    missing = {"channel_id": "1000000068002", "events": ["Deals.edit"]}
    response = await http.put(url, json={"watch": [missing]}, headers=auth(token))
    assert response.status_code == 400
    assert response.json()["watch"][0]["details"] == {
        "api_name": "notify_url",
        "json_path": "$.watch[0].notify_url",
    }


async def test_patch_updates_and_deletes_events(sandbox: SandboxControl, http, token):
    url = f"{sandbox.origin}{WATCH}"
    await http.post(url, json={"watch": [_item("2000001")]}, headers=auth(token))
    patched = await http.patch(
        url,
        json={"watch": [{"channel_id": "2000001", "notify_url": "https://new.example/h"}]},
        headers=auth(token),
    )
    assert patched.status_code == 200
    [item] = (await _get(http, sandbox, token, channel_id="2000001")).json()["watch"]
    assert item["notify_url"] == "https://new.example/h"
    assert item["events"] == ["Deals.create", "Deals.edit"]
    removed = await http.patch(
        url,
        json={
            "watch": [{"channel_id": "2000001", "events": ["Deals.edit"], "_delete_events": True}]
        },
        headers=auth(token),
    )
    assert removed.status_code == 200
    [item] = (await _get(http, sandbox, token, channel_id="2000001")).json()["watch"]
    assert item["events"] == ["Deals.create"]
    unknown = await http.patch(url, json={"watch": [{"channel_id": "999999"}]}, headers=auth(token))
    assert unknown.status_code == 400
    assert unknown.json()["watch"][0]["details"]["api_name"] == "channel_id"


async def test_delete_channels(sandbox: SandboxControl, http, token):
    url = f"{sandbox.origin}{WATCH}"
    both = await http.delete(
        url, params={"channel_ids": "1000000068001,1000000068002"}, headers=auth(token)
    )
    assert both.status_code == 200
    # One result per module of each channel, details exactly as the spec's example.
    results = both.json()["watch"]
    assert len(results) == 10
    assert results[0] == {
        "code": "SUCCESS",
        "details": {
            "resource_uri": f"{sandbox.origin}/crm/v8/Leads",
            "resource_id": results[0]["details"]["resource_id"],
            "channel_id": "1000000068001",
        },
        "message": "Successfully un-subscribed from actions-watch",
        "status": "success",
    }
    assert [r["details"]["channel_id"] for r in results] == ["1000000068001"] * 5 + [
        "1000000068002"
    ] * 5
    partial = await http.delete(
        url, params={"channel_ids": "1000000068003,42"}, headers=auth(token)
    )
    assert partial.status_code == 207
    assert partial.json()["watch"][-1] == {
        "code": "NOT_SUBSCRIBED",
        "details": {"channel_id": "42"},
        "message": "the given channel_id is not subscribed",
        "status": "error",
    }
    remaining = await sandbox.crm_channels()
    assert len(remaining) == 250 - 15
    too_long = await http.delete(
        url, params={"channel_ids": ",".join(["1000000068004"] * 37)}, headers=auth(token)
    )
    assert too_long.status_code == 400
    assert too_long.json()["details"] == {"param_name": "channel_ids", "maximum_length": 512}
    missing = await http.delete(url, headers=auth(token))
    assert missing.status_code == 400
    assert missing.json() == {
        "code": "REQUIRED_PARAM_MISSING",
        "details": {"param_name": "channel_ids", "param": "channel_ids"},
        "message": "One of the expected parameter is missing",
        "status": "error",
    }


async def test_current_user(sandbox: SandboxControl, http, token):
    response = await http.get(
        f"{sandbox.origin}/crm/v8/users", params={"type": "CurrentUser"}, headers=auth(token)
    )
    assert response.status_code == 200
    [user] = response.json()["users"]
    assert user["email"] == "demo@sandbox.example"
    bad = await http.get(
        f"{sandbox.origin}/crm/v8/users", params={"type": "Everyone"}, headers=auth(token)
    )
    assert bad.status_code == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/crm/v8/Leads/1/2"), ("GET", "/crm/v2/actions/watch"), ("POST", "/crm/v8/users")],
)
async def test_unknown_urls(sandbox: SandboxControl, http, token, method, path):
    response = await http.request(method, f"{sandbox.origin}{path}", headers=auth(token))
    assert response.status_code == 404
    assert response.json()["code"] == "INVALID_URL_PATTERN"


async def test_calls_record_the_token_sent(sandbox: SandboxControl, http, token):
    await _get(http, sandbox, token)
    await http.get(f"{sandbox.origin}{WATCH}")
    with_token, without = await sandbox.calls("crm.watch")
    assert (with_token.authorization, with_token.token, with_token.status) == (True, token, 200)
    assert (without.authorization, without.token, without.status) == (False, None, 401)
