"""Desk `/api/v1`: organizations, webhooks CRUD, orgId checks, paging, scopes, error shapes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox.control.client import DEMO_DESK_ORG_ID, SandboxControl
from tests.sandbox.conftest import access_token, auth

WRITE_SCOPES = ["Desk.webhooks.ALL", "Desk.basic.READ"]


@pytest.fixture
async def token(sandbox: SandboxControl, http: httpx.AsyncClient) -> str:
    return await access_token(http, sandbox)


@pytest.fixture
async def writer(sandbox: SandboxControl, http: httpx.AsyncClient) -> str:
    rt = await sandbox.add_refresh_token(scopes=WRITE_SCOPES)
    return await access_token(http, sandbox, rt)


def _org(token: str, org_id: str = DEMO_DESK_ORG_ID) -> dict[str, str]:
    return auth(token, orgId=org_id)


def _hook(**extra: Any) -> dict[str, Any]:
    return {
        "name": "My hook",
        "url": "https://app.example/desk",
        "subscriptions": {"Ticket_Add": None, "Ticket_Update": {"fields": ["status"]}},
        **extra,
    }


async def test_organizations(sandbox: SandboxControl, http, token):
    response = await http.get(f"{sandbox.origin}/api/v1/organizations", headers=auth(token))
    assert response.status_code == 200
    [org] = response.json()["data"]
    assert org["id"] == DEMO_DESK_ORG_ID
    assert {"companyName", "portalName", "edition", "isDefault"} <= set(org)


async def test_organizations_need_basic_scope(sandbox: SandboxControl, http: httpx.AsyncClient):
    rt = await sandbox.add_refresh_token(scopes=["Desk.webhooks.READ"])
    token = await access_token(http, sandbox, rt)
    response = await http.get(f"{sandbox.origin}/api/v1/organizations", headers=auth(token))
    assert response.status_code == 401
    assert response.json()["errorCode"] == "SCOPE_MISMATCH"


async def test_list_webhooks_header_or_query(sandbox: SandboxControl, http, token):
    url = f"{sandbox.origin}/api/v1/webhooks"
    by_header = await http.get(url, headers=_org(token))
    assert by_header.status_code == 200
    assert len(by_header.json()["data"]) == 5
    by_query = await http.get(url, params={"orgId": DEMO_DESK_ORG_ID}, headers=auth(token))
    assert by_query.json() == by_header.json()
    [call, _] = await sandbox.calls("desk.webhooks")
    assert call.org_id == DEMO_DESK_ORG_ID


async def test_paging(sandbox: SandboxControl, http, token):
    url = f"{sandbox.origin}/api/v1/webhooks"
    page = await http.get(url, params={"from": 1, "limit": 2}, headers=_org(token))
    assert [h["name"] for h in page.json()["data"]] == ["Sandbox webhook 2", "Sandbox webhook 3"]
    empty = await http.get(url, params={"from": 5}, headers=_org(token))
    assert empty.status_code == 204
    assert empty.content == b""
    for params in ({"limit": 101}, {"limit": 0}, {"from": -1}, {"limit": "x"}):
        bad = await http.get(url, params=params, headers=_org(token))
        assert bad.status_code == 422
        assert bad.json()["errorCode"] == "INVALID_DATA"
        assert bad.json()["errors"][0]["fieldName"] in ("from", "limit")


async def test_org_checks(sandbox: SandboxControl, http, token):
    url = f"{sandbox.origin}/api/v1/webhooks"
    missing = await http.get(url, headers=auth(token))
    assert missing.status_code == 422
    assert missing.json()["errors"] == [
        {"fieldName": "orgId", "errorType": "missing", "errorMessage": "orgId is required"}
    ]
    other = await sandbox.add_desk_org("someone-else")
    mismatch = await http.get(url, headers=_org(token, other["id"]))
    assert mismatch.status_code == 403
    assert mismatch.json()["errorCode"] == "OAUTH_ORG_MISMATCH"
    unknown = await http.get(url, headers=_org(token, "123"))
    assert unknown.json()["errorCode"] == "OAUTH_ORG_MISMATCH"


async def test_empty_org_lists_204(sandbox: SandboxControl, http, token):
    org = await sandbox.add_desk_org("demo")
    response = await http.get(f"{sandbox.origin}/api/v1/webhooks", headers=_org(token, org["id"]))
    assert response.status_code == 204


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Zoho-oauthtoken nope"}, {"Authorization": "x"}]
)
async def test_invalid_oauth(sandbox: SandboxControl, http, headers):
    response = await http.get(
        f"{sandbox.origin}/api/v1/webhooks", headers={**headers, "orgId": DEMO_DESK_ORG_ID}
    )
    assert response.status_code == 401
    assert response.json()["errorCode"] == "INVALID_OAUTH"
    assert set(response.json()) == {"errorCode", "message"}


@pytest.mark.parametrize(
    "scopes", [["Desk.webhooks.READ"], ["Desk.events.READ"], ["Desk.settings.READ"]]
)
async def test_read_scopes_old_and_new(sandbox: SandboxControl, http, scopes):
    rt = await sandbox.add_refresh_token(scopes=scopes)
    token = await access_token(http, sandbox, rt)
    response = await http.get(f"{sandbox.origin}/api/v1/webhooks", headers=_org(token))
    assert response.status_code == 200


async def test_read_scope_cannot_write(sandbox: SandboxControl, http, token):
    response = await http.post(
        f"{sandbox.origin}/api/v1/webhooks", json=_hook(), headers=_org(token)
    )
    assert response.status_code == 401
    assert response.json()["errorCode"] == "SCOPE_MISMATCH"


async def test_crud(sandbox: SandboxControl, http, writer, receiver):
    url = f"{sandbox.origin}/api/v1/webhooks"
    created = await http.post(
        url, json=_hook(description="d", url=receiver.url()), headers=_org(writer)
    )
    assert created.status_code == 200
    hook = created.json()
    assert hook["name"] == "My hook"
    assert hook["isEnabled"] is True
    assert (hook["type"], hook["includeEventsFrom"]) == ("CUSTOMER_WEBHOOK", [])
    assert "modifiedBy" not in hook
    one = await http.get(f"{url}/{hook['id']}", headers=_org(writer))
    assert one.json() == hook
    patched = await http.patch(
        f"{url}/{hook['id']}",
        json={"isEnabled": False, "subscriptions": hook["subscriptions"]},
        headers=_org(writer),
    )
    assert patched.status_code == 200
    assert patched.json()["isEnabled"] is False
    assert patched.json()["name"] == "My hook"
    deleted = await http.delete(f"{url}/{hook['id']}", headers=_org(writer))
    assert (deleted.status_code, deleted.content) == (200, b"")
    gone = await http.get(f"{url}/{hook['id']}", headers=_org(writer))
    assert gone.status_code == 404
    assert gone.json()["errorCode"] == "URL_NOT_FOUND"


@pytest.mark.parametrize(
    ("body", "field", "error_type"),
    [
        ({"name": "n", "subscriptions": {"Ticket_Add": None}}, "/url", "missing"),
        ({"url": "https://x.example"}, "/subscriptions", "missing"),
        (_hook(url="not a url"), "/url", "invalid"),
        (_hook(url="https://x.example/" + "a" * 490), "/url", "invalid"),
        (_hook(description="d" * 3001), "/description", "invalid"),
        (_hook(ignoreSourceId="not-a-uuid"), "/ignoreSourceId", "invalid"),
        (_hook(includeEventsFrom=["HUMANS"]), "/includeEventsFrom", "invalid"),
        (_hook(colour="blue"), "/colour", "invalid"),
        (_hook(subscriptions={"Nope_Event": None}), "/subscriptions/Nope_Event", "invalid"),
        (
            _hook(subscriptions={"Ticket_Update": {"fields": list("abcdef")}}),
            "/subscriptions/Ticket_Update/fields",
            "invalid",
        ),
        (
            _hook(subscriptions={"Contact_Add": {"departmentIds": ["1"]}}),
            "/subscriptions/Contact_Add",
            "invalid",
        ),
        (
            _hook(subscriptions={"Ticket_Thread_Add": {"direction": "sideways"}}),
            "/subscriptions/Ticket_Thread_Add/direction",
            "invalid",
        ),
        (
            _hook(subscriptions={"Ticket_Add": {"fields": ["status"]}}),
            "/subscriptions/Ticket_Add/fields",
            "invalid",
        ),
        (_hook(isEnabled="yes"), "/isEnabled", "invalid"),
        ([1, 2], "/", "invalid"),
    ],
)
async def test_invalid_data(sandbox: SandboxControl, http, writer, body, field, error_type):
    response = await http.post(f"{sandbox.origin}/api/v1/webhooks", json=body, headers=_org(writer))
    assert response.status_code == 422
    payload = response.json()
    assert payload["errorCode"] == "INVALID_DATA"
    assert payload["errors"][0]["fieldName"] == field
    assert payload["errors"][0]["errorType"] == error_type


async def test_malformed_json(sandbox: SandboxControl, http, writer):
    response = await http.post(
        f"{sandbox.origin}/api/v1/webhooks",
        content=b"{oops",
        headers=_org(
            writer,
        )
        | {"Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["errorCode"] == "INVALID_DATA"


async def test_twenty_webhooks_per_portal(sandbox: SandboxControl, http, writer):
    await sandbox.seed_desk_webhooks(count=15)
    response = await http.post(
        f"{sandbox.origin}/api/v1/webhooks", json=_hook(), headers=_org(writer)
    )
    assert response.status_code == 422
    assert response.json()["errorCode"] == "UNPROCESSABLE_ENTITY"


@pytest.mark.parametrize("path", ["/api/v1/tickets", "/api/v2/webhooks", "/api/v1/webhooks/1/x"])
async def test_unknown_urls(sandbox: SandboxControl, http, token, path):
    response = await http.get(f"{sandbox.origin}{path}", headers=_org(token))
    assert response.status_code == 404
    assert response.json()["errorCode"] == "URL_NOT_FOUND"
