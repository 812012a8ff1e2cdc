"""Desk search of tickets and contacts where zoho/zohodesk-oas v1.0 Search.json says what to
answer: `{"data", "count"}`, modifiedTimeRange, sortBy, limit 1-100, from 0-999, 204, 422,
and the scopes it lists (the module's READ and Desk.search.READ)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from sandbox.control.client import DEMO_DESK_ORG_ID, SandboxControl
from tests.sandbox.conftest import access_token, auth

TICKETS = "/api/v1/tickets/search"
CONTACTS = "/api/v1/contacts/search"
# Ticket.json / Search.json ticket fields the product relies on.
TICKET_KEYS = {
    "id",
    "createdTime",
    "modifiedTime",
    "isDeleted",
    "isTrashed",
    "subject",
    "status",
    "departmentId",
}


@pytest.fixture
async def token(sandbox: SandboxControl, http: httpx.AsyncClient) -> str:
    return await access_token(http, sandbox)


async def _search(http, sb, token, path=TICKETS, **params: Any) -> httpx.Response:
    return await http.get(
        f"{sb.origin}{path}", params=params, headers=auth(token, orgId=DEMO_DESK_ORG_ID)
    )


def _desk(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def test_search_answers_data_and_count(sandbox, http, token):
    response = await _search(http, sandbox, token, limit=5)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "count"} and body["count"] == 5 == len(body["data"])
    ticket = body["data"][0]
    assert TICKET_KEYS <= set(ticket)
    assert ticket["modifiedTime"].endswith(".000Z") and ticket["isTrashed"] is False
    default = (await _search(http, sandbox, token)).json()
    assert default["count"] == 10  # the spec's default limit


async def test_modified_range_and_sorts(sandbox, http, token):
    now = await sandbox.now()
    await sandbox.change_records(
        "desk", "Ticket", "update", [{"id": "1892000000100001", "values": {"status": "Closed"}}]
    )
    window = f"{_desk(now - 5)},{_desk(now + 5)}"
    recent = (await _search(http, sandbox, token, modifiedTimeRange=window)).json()
    assert [t["id"] for t in recent["data"]] == ["1892000000100001"]
    assert recent["data"][0]["status"] == "Closed"
    for sort, reverse in (("modifiedTime", False), ("-modifiedTime", True)):
        listed = (await _search(http, sandbox, token, sortBy=sort, limit=100)).json()["data"]
        times = [_epoch(t["modifiedTime"]) for t in listed]
        assert times == sorted(times, reverse=reverse)
    created = (await _search(http, sandbox, token, sortBy="createdTime", limit=100)).json()
    times = [_epoch(t["createdTime"]) for t in created["data"]]
    assert times == sorted(times)


async def test_from_and_limit_bounds(sandbox, http, token):
    page = await _search(http, sandbox, token, sortBy="createdTime", limit=100, **{"from": 100})
    first = (await _search(http, sandbox, token, sortBy="createdTime", limit=100)).json()
    assert {t["id"] for t in page.json()["data"]}.isdisjoint(t["id"] for t in first["data"])
    assert (await _search(http, sandbox, token, **{"from": 999})).status_code == 204
    for bad in (
        {"limit": 0},
        {"limit": 101},
        {"from": 1000},
        {"sortBy": "subject"},
        {"modifiedTimeRange": "2024-01-01"},
    ):
        response = await _search(http, sandbox, token, **bad)
        assert response.status_code == 422, bad
        body = response.json()
        assert body["errorCode"] == "INVALID_DATA"
        assert body["errors"][0]["fieldName"] == next(iter(bad))


async def test_trashed_tickets_are_not_found_by_search(sandbox, http, token):
    await sandbox.change_records("desk", "Ticket", "delete", ["1892000000100001"])
    ids = set()
    for start in range(0, 300, 100):
        response = await _search(http, sandbox, token, limit=100, **{"from": start})
        ids |= {t["id"] for t in response.json()["data"]}
    assert len(ids) == 299 and "1892000000100001" not in ids


async def test_contacts_search(sandbox, http, token):
    response = await _search(http, sandbox, token, path=CONTACTS, limit=3, sortBy="-modifiedTime")
    assert response.status_code == 200
    assert {"id", "modifiedTime", "createdTime", "lastName"} <= set(response.json()["data"][0])


@pytest.mark.parametrize(
    ("scopes", "path", "allowed"),
    [
        (["Desk.tickets.READ", "Desk.search.READ"], TICKETS, True),
        (["Desk.tickets.ALL", "Desk.search.READ"], TICKETS, True),
        (["Desk.tickets.READ"], TICKETS, False),
        (["Desk.search.READ"], TICKETS, False),
        (["Desk.contacts.READ", "Desk.search.READ"], CONTACTS, True),
        (["Desk.tickets.READ", "Desk.search.READ"], CONTACTS, False),
    ],
)
async def test_search_scopes(sandbox, http, scopes, path, allowed):
    refresh = await sandbox.add_refresh_token(scopes=scopes)
    token = await access_token(http, sandbox, refresh)
    response = await _search(http, sandbox, token, path=path)
    if allowed:
        assert response.status_code == 200
    else:
        assert (response.status_code, response.json()["errorCode"]) == (401, "SCOPE_MISMATCH")


async def test_ticket_of_another_org_or_unknown(sandbox, http, token):
    unknown = await http.get(
        f"{sandbox.origin}/api/v1/tickets/1", headers=auth(token, orgId=DEMO_DESK_ORG_ID)
    )
    assert unknown.status_code == 404
    other = await http.get(
        f"{sandbox.origin}/api/v1/tickets/1892000000100001", headers=auth(token, orgId="42")
    )
    assert other.json()["errorCode"] == "OAUTH_ORG_MISMATCH"
