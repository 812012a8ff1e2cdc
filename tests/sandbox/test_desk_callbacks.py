"""Desk callbacks: an array of events per POST to every enabled subscribed webhook, signed
with X-ZDesk-JWT (keys at /.well-known/jwks.json); options filter; 410 drops the webhook."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sandbox.control.client import DEMO_DESK_ORG_ID, SandboxControl
from sandbox.state import Config
from tests.plugins.receiver_fixtures import Receiver

SOURCE = "49ad222a-f812-11e7-8c3f-9a214cf093ae"


def _hook(url: str, subscriptions: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "test hook", "url": url, "subscriptions": subscriptions, **extra}


async def _seed(sb: SandboxControl, *hooks: dict[str, Any]) -> list[dict[str, Any]]:
    await sb.reset(desk_webhooks=0)  # the demo's webhooks point at hosts never called
    return await sb.seed_desk_webhooks(items=list(hooks))


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _verify(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    header_b64, claims_b64, signature_b64 = token.split(".")
    header = json.loads(_unb64(header_b64))
    assert header["alg"] == "RS256"
    [key] = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    public = rsa.RSAPublicNumbers(
        int.from_bytes(_unb64(key["e"]), "big"), int.from_bytes(_unb64(key["n"]), "big")
    ).public_key()
    public.verify(
        _unb64(signature_b64),
        f"{header_b64}.{claims_b64}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    claims: dict[str, Any] = json.loads(_unb64(claims_b64))
    return claims


async def test_events_together_are_one_signed_array(sandbox: SandboxControl, receiver: Receiver):
    [hook] = await _seed(sandbox, _hook(receiver.url("/desk"), {"Ticket_Add": None}))
    records = [
        {"id": "101", "values": {"subject": "one", "departmentId": "7"}},
        {"id": "102", "values": {"subject": "two"}},
    ]
    [delivery] = await sandbox.change_records("desk", "Ticket", "insert", records)
    assert (delivery.status, delivery.subscription) == (200, hook["id"])
    [request] = receiver.requests("/desk")
    events = request.json()
    assert [e["eventType"] for e in events] == ["Ticket_Add", "Ticket_Add"]
    assert events[0]["payload"] == {"id": "101", "subject": "one", "departmentId": "7"}
    assert all(set(e) == {"eventType", "payload", "eventTime", "orgId"} for e in events)
    assert events[0]["orgId"] == DEMO_DESK_ORG_ID
    assert abs(int(events[0]["eventTime"]) / 1000 - await sandbox.now()) < 5
    async with httpx.AsyncClient() as http:
        jwks = (await http.get(f"{sandbox.origin}/.well-known/jwks.json")).json()
    claims = _verify(request.headers["X-ZDesk-JWT"], jwks)
    assert claims["iss"] == f"orgId:{DEMO_DESK_ORG_ID}"
    assert claims["aud"] == f"webhookId:{hook['id']}"
    assert claims["exp"] > time.time()


async def test_prev_state_only_with_include_prev_state(sandbox, receiver):
    await _seed(
        sandbox,
        _hook(receiver.url("/prev"), {"Ticket_Update": {"includePrevState": True}}),
        _hook(receiver.url("/plain"), {"Ticket_Update": None}),
    )
    record = {"id": "101", "values": {"status": "Closed"}, "prev": {"status": "Open"}}
    await sandbox.change_records("desk", "Ticket", "update", [record])
    [with_prev] = receiver.requests("/prev")[0].json()
    assert with_prev["prevState"] == {"id": "101", "status": "Open"}
    [plain] = receiver.requests("/plain")[0].json()
    assert "prevState" not in plain


async def test_only_enabled_subscribed_and_matching_webhooks_hear(sandbox, receiver):
    await _seed(
        sandbox,
        _hook(receiver.url("/off"), {"Ticket_Add": None}, isEnabled=False),
        _hook(receiver.url("/contacts"), {"Contact_Add": None}),
        _hook(receiver.url("/dept"), {"Ticket_Add": {"departmentIds": ["8"]}}),
        _hook(receiver.url("/fields"), {"Ticket_Update": {"fields": ["status"]}}),
        _hook(receiver.url("/in"), {"Ticket_Thread_Add": {"direction": "in"}}),
        _hook(receiver.url("/ignored"), {"Ticket_Add": None}, ignoreSourceId=SOURCE),
    )
    await sandbox.change_records(
        "desk",
        "Ticket",
        "insert",
        [{"id": "1", "values": {"departmentId": "7"}}],
        source_id=SOURCE,
    )
    await sandbox.change_records(
        "desk", "Ticket", "update", [{"id": "1", "values": {"subject": "x"}, "prev": {}}]
    )
    await sandbox.change_records(
        "desk",
        "Ticket",
        "insert",
        [{"id": "2", "values": {"direction": "out"}}],
        event="Ticket_Thread_Add",
    )
    assert receiver.requests() == []
    await sandbox.change_records(
        "desk", "Ticket", "update", [{"id": "1", "values": {"status": "Closed"}, "prev": {}}]
    )
    await sandbox.change_records(
        "desk",
        "Ticket",
        "insert",
        [{"id": "3", "values": {"direction": "in"}}],
        event="Ticket_Thread_Add",
    )
    assert len(receiver.requests("/fields")) == 1
    assert len(receiver.requests("/in")) == 1


async def test_an_answer_of_410_deletes_the_webhook(sandbox, receiver):
    [hook] = await _seed(sandbox, _hook(receiver.url("/gone"), {"Ticket_Add": None}))
    receiver.answer("/gone", 410)
    [delivery] = await sandbox.change_records("desk", "Ticket", "insert", ["1"])
    assert delivery.status == 410
    assert await sandbox.change_records("desk", "Ticket", "insert", ["2"]) == []
    stats = (await sandbox.delivery_stats())[("desk", hook["id"])]
    assert stats["statuses"] == {"410": 1}


@pytest.mark.slow
async def test_desk_times_out_after_its_own_limit(sandbox, receiver):
    await _seed(sandbox, _hook(receiver.url("/slow"), {"Ticket_Add": None}))
    settings = await sandbox.configure(desk_delivery_timeout_seconds=0.2)
    assert Config().desk_delivery_timeout_seconds == 5.0  # Desk's documented limit
    assert settings["desk_delivery_timeout_seconds"] == 0.2
    receiver.answer("/slow", 200, delay=1.0)
    [delivery] = await sandbox.change_records("desk", "Ticket", "insert", ["1"])
    assert delivery.status == "timeout"
    assert delivery.latency_ms < 900


async def test_only_200_counts_as_delivered_for_desk(sandbox, receiver):
    [hook] = await _seed(sandbox, _hook(receiver.url("/nocontent"), {"Ticket_Add": None}))
    receiver.answer("/nocontent", 204)
    [delivery] = await sandbox.change_records("desk", "Ticket", "insert", ["1"])
    assert (delivery.status, delivery.ok) == (204, False)
    stats = (await sandbox.delivery_stats())[("desk", hook["id"])]
    assert (stats["delivered"], stats["failed"]) == (0, 1)
