"""Seeding through the control client: clients, users, explicit CRM items and Desk webhooks."""

from __future__ import annotations

import httpx
import pytest

from sandbox.control_client import DEMO_DESK_ORG_ID, SandboxControl, SandboxControlError
from tests.sandbox.conftest import access_token, auth, refresh


async def test_add_client_and_user(sandbox: SandboxControl, http: httpx.AsyncClient):
    client_id, secret = await sandbox.add_client("1000.OTHER", "other-secret")
    user = await sandbox.add_user("erin", "erin@example.com")
    assert user["email"] == "erin@example.com"
    rt = await sandbox.add_refresh_token(
        user="erin", client_id=client_id, scopes=["ZohoCRM.users.ALL"]
    )
    # A refresh token only works with its own client.
    assert (await refresh(http, sandbox, rt)).json() == {"error": "invalid_code"}
    body = (await refresh(http, sandbox, rt, client_id=client_id, client_secret=secret)).json()
    users = await http.get(
        f"{sandbox.origin}/crm/v8/users",
        params={"type": "CurrentUser"},
        headers=auth(body["access_token"]),
    )
    assert users.json()["users"][0]["email"] == "erin@example.com"


async def test_seed_explicit_crm_items(sandbox: SandboxControl, http: httpx.AsyncClient):
    total = await sandbox.seed_crm_channels(
        "demo",
        items=[
            {
                "channel_id": "555",
                "events": ["Cases.create", "Leads.all"],
                "notify_url": "https://x.example/h",
                "token": "t",
            }
        ],
        replace=True,
    )
    assert total == 2
    token = await access_token(http, sandbox)
    got = await http.get(f"{sandbox.origin}/crm/v8/actions/watch", headers=auth(token))
    assert [(i["channel_id"], i["resource_name"]) for i in got.json()["watch"]] == [
        ("555", "Cases"),
        ("555", "Leads"),
    ]
    with pytest.raises(SandboxControlError) as bad:
        await sandbox.seed_crm_channels("demo", items=[{"channel_id": "1"}])
    assert bad.value.status == 400
    with pytest.raises(SandboxControlError):
        await sandbox.seed_crm_channels("demo", count=3, modules=["Nope"])


async def test_seed_generated_channels_over_chosen_modules(sandbox: SandboxControl):
    await sandbox.seed_crm_channels("frank", count=4, modules=["Deals", "Cases"], first_channel=9)
    items = await sandbox.crm_channels("frank")
    assert [(i["channel_id"], i["resource_name"]) for i in items] == [
        ("9", "Deals"),
        ("9", "Cases"),
        ("10", "Deals"),
        ("10", "Cases"),
    ]


async def test_seed_desk_org_and_explicit_webhooks(
    sandbox: SandboxControl, http: httpx.AsyncClient
):
    org = await sandbox.add_desk_org("demo", company_name="Second", portal_name="second")
    made = await sandbox.seed_desk_webhooks(
        org["id"],
        items=[{"name": "one", "url": "https://x.example", "subscriptions": {"Ticket_Add": None}}],
    )
    assert [h["name"] for h in made] == ["one"]
    token = await access_token(http, sandbox)
    orgs = await http.get(f"{sandbox.origin}/api/v1/organizations", headers=auth(token))
    assert [o["id"] for o in orgs.json()["data"]] == [DEMO_DESK_ORG_ID, org["id"]]
    hooks = await http.get(
        f"{sandbox.origin}/api/v1/webhooks", headers=auth(token, orgId=org["id"])
    )
    assert [h["name"] for h in hooks.json()["data"]] == ["one"]
    with pytest.raises(SandboxControlError):
        await sandbox.seed_desk_webhooks("999", count=1)


@pytest.mark.parametrize("family", ["Desk.settings", "Desk.events"])
async def test_desk_writes_with_older_scopes(
    sandbox: SandboxControl, http: httpx.AsyncClient, receiver, family: str
):
    rt = await sandbox.add_refresh_token(scopes=[f"{family}.CREATE", f"{family}.DELETE"])
    token = await access_token(http, sandbox, rt)
    headers = auth(token, orgId=DEMO_DESK_ORG_ID)
    url = f"{sandbox.origin}/api/v1/webhooks"
    created = await http.post(
        url,
        json={"name": "n", "url": receiver.url(), "subscriptions": {"Contact_Add": None}},
        headers=headers,
    )
    assert created.status_code == 200
    patched = await http.patch(f"{url}/{created.json()['id']}", json={}, headers=headers)
    assert patched.json()["errorCode"] == "SCOPE_MISMATCH"  # no UPDATE scope
    deleted = await http.delete(f"{url}/{created.json()['id']}", headers=headers)
    assert deleted.status_code == 200


async def test_calls_counts_and_clear(sandbox: SandboxControl, http: httpx.AsyncClient):
    token = await access_token(http, sandbox)
    await http.get(f"{sandbox.origin}/crm/v8/actions/watch", headers=auth(token))
    await http.get(f"{sandbox.origin}/crm/v8/unknown/path", headers=auth(token))
    assert await sandbox.call_counts() == {"token": 1, "crm.watch": 1, "crm.unknown": 1}
    assert [c.route for c in await sandbox.calls()] == ["token", "crm.watch", "crm.unknown"]
    await sandbox.clear_calls()
    assert await sandbox.calls() == []
    assert await sandbox.token_outcomes() == {}
    assert await sandbox.mint_count("1000.sandbox.demo-refresh") == 1  # tokens stay


async def test_faults_listing(sandbox: SandboxControl):
    await sandbox.latency("crm.watch", 10)
    await sandbox.fault("token", "status_500", count=3)
    listed = await sandbox.faults()
    assert [(f["route"], f["kind"], f["remaining"]) for f in listed] == [
        ("crm.watch", "latency", None),
        ("token", "status_500", 3),
    ]
    await sandbox.clear_faults()
    assert await sandbox.faults() == []
