"""Desk where its OpenAPI specs (zohodesk-oas v1.0 Webhook.json, Organization.json,
Common.json) say what to answer: the webhook shape, required fields, the URL check, the
spec's events and options, organisations, scopes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox.control.client import DEMO_DESK_ORG_ID, SandboxControl
from sandbox.desk.events import EVENT_OPTIONS
from tests.plugins.receiver_fixtures import Receiver
from tests.sandbox.conftest import access_token, auth

HOOKS = "/api/v1/webhooks"


@pytest.fixture
async def writer(sandbox: SandboxControl, http: httpx.AsyncClient) -> dict[str, str]:
    rt = await sandbox.add_refresh_token(scopes=["Desk.webhooks.ALL", "Desk.basic.READ"])
    return auth(await access_token(http, sandbox, rt), orgId=DEMO_DESK_ORG_ID)


async def _create(http, sb, headers, body: dict[str, Any]) -> httpx.Response:
    return await http.post(f"{sb.origin}{HOOKS}", json=body, headers=headers)


async def test_create_needs_only_url_and_subscriptions(sandbox, http, writer, receiver):
    created = await _create(
        http, sandbox, writer, {"url": receiver.url(), "subscriptions": {"Ticket_Add": None}}
    )
    assert created.status_code == 200
    hook = created.json()
    assert set(hook) == {
        "id",
        "name",
        "url",
        "description",
        "subscriptions",
        "ignoreSourceId",
        "isEnabled",
        "includeEventsFrom",
        "type",
        "createdBy",
        "createdTime",
        "modifiedTime",
    }
    assert hook["type"] == "CUSTOMER_WEBHOOK"
    with_all = await _create(
        http,
        sandbox,
        writer,
        {
            "url": receiver.url(),
            "subscriptions": {"Ticket_Add": None},
            "includeEventsFrom": ["AUTOMATION"],
            "ignoreSourceId": "",
            "description": "d" * 3000,
        },
    )
    assert with_all.json()["includeEventsFrom"] == ["AUTOMATION"]


async def test_every_spec_event_with_its_options(sandbox, http, writer, receiver):
    assert len(EVENT_OPTIONS) == 56
    everything = {event: None for event in EVENT_OPTIONS}
    everything["Ticket_Thread_Add"] = {"direction": "out", "departmentId": ["1"]}
    everything["Ticket_Update"] = {"departmentIds": ["1"], "fields": ["status"]}
    everything["Task_Update"] = {"includePrevState": True}
    created = await _create(
        http, sandbox, writer, {"url": receiver.url(), "subscriptions": everything}
    )
    assert created.status_code == 200
    assert created.json()["subscriptions"] == everything


async def test_patch_requires_subscriptions(sandbox, http, writer, receiver):
    hook = (
        await _create(
            http, sandbox, writer, {"url": receiver.url(), "subscriptions": {"Ticket_Add": None}}
        )
    ).json()
    response = await http.patch(
        f"{sandbox.origin}{HOOKS}/{hook['id']}", json={"name": "x"}, headers=writer
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["fieldName"] == "/subscriptions"
    assert response.json()["errors"][0]["errorType"] == "missing"


async def test_the_url_is_checked_with_get_then_post(sandbox, http, writer, receiver: Receiver):
    body = {"url": receiver.url("/check"), "subscriptions": {"Ticket_Add": None}}
    assert (await _create(http, sandbox, writer, body)).status_code == 200
    assert [r.method for r in receiver.requests("/check")] == ["GET"]
    receiver.answer("/check", 404)
    refused = await _create(http, sandbox, writer, body)
    assert [r.method for r in receiver.requests("/check")] == ["GET", "GET", "POST"]
    assert refused.status_code == 422
    assert refused.json()["errorCode"] == "INVALID_DATA"
    assert refused.json()["errors"][0]["fieldName"] == "/url"
    # A host --deliver-to does not allow is never contacted, so never passes.
    elsewhere = {"url": "https://hooks.example/desk", "subscriptions": {"Ticket_Add": None}}
    assert (await _create(http, sandbox, writer, elsewhere)).status_code == 422
    await sandbox.configure(desk_url_check=False)
    assert (await _create(http, sandbox, writer, elsewhere)).status_code == 200


async def test_a_url_change_is_checked_and_other_patches_are_not(sandbox, http, writer, receiver):
    hook = (
        await _create(
            http,
            sandbox,
            writer,
            {"url": receiver.url("/a"), "subscriptions": {"Ticket_Add": None}},
        )
    ).json()
    one = f"{sandbox.origin}{HOOKS}/{hook['id']}"
    subs = {"Ticket_Add": None}
    assert (await http.patch(one, json={"subscriptions": subs}, headers=writer)).status_code == 200
    assert len(receiver.requests("/a")) == 1
    receiver.answer("/b", 500)
    moved = await http.patch(
        one, json={"subscriptions": subs, "url": receiver.url("/b")}, headers=writer
    )
    assert moved.status_code == 422
    assert [r.method for r in receiver.requests("/b")] == ["GET", "POST"]
    assert (await http.get(one, headers=writer)).json()["url"] == receiver.url("/a")


async def test_organizations_as_the_spec_lists_them(sandbox, http):
    for scope in ("Desk.organization.READ", "Desk.settings.READ", "desk.basic.read"):
        rt = await sandbox.add_refresh_token(scopes=[scope])
        headers = auth(await access_token(http, sandbox, rt))
        listed = await http.get(f"{sandbox.origin}/api/v1/organizations", headers=headers)
        assert listed.status_code == 200, scope
    [org] = listed.json()["data"]
    assert len(org) == 34
    assert org["edition"] == "ENTERPRISE"
    assert org["isDefault"] is True
    accessible = await http.get(f"{sandbox.origin}/api/v1/accessibleOrganizations", headers=headers)
    assert accessible.json()["data"] == [org]
    one = await http.get(f"{sandbox.origin}/api/v1/organizations/{org['id']}", headers=headers)
    assert one.json() == org
    other = await http.get(f"{sandbox.origin}/api/v1/organizations/999", headers=headers)
    assert other.json()["errorCode"] == "OAUTH_ORG_MISMATCH"
    await sandbox.configure(desk_org_booleans_as_strings=True)
    [as_strings] = (
        await http.get(f"{sandbox.origin}/api/v1/organizations", headers=headers)
    ).json()["data"]
    assert as_strings["isDefault"] == "true"


async def test_scope_names_compare_without_case(sandbox, http):
    rt = await sandbox.add_refresh_token(scopes=["desk.webhooks.read"])
    headers = auth(await access_token(http, sandbox, rt), orgId=DEMO_DESK_ORG_ID)
    assert (await http.get(f"{sandbox.origin}{HOOKS}", headers=headers)).status_code == 200
