"""API credits and calls in flight per org, as Zoho counts them (docs/zoho.md): a rolling 24
hours on the sandbox clock, editions' allowances, X-API-CREDITS-REMAINING from half spent,
429 TOO_MANY_REQUESTS past the allowance or the calls in flight; every CRM and Desk call."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from sandbox.control.client import DEMO_DESK_ORG_ID, SandboxControl, SandboxControlError
from tests.sandbox.conftest import access_token, auth

READ = "/crm/v8/Leads"


@pytest.fixture
async def token(sandbox: SandboxControl, http: httpx.AsyncClient) -> str:
    return await access_token(http, sandbox)


async def _read(http, sb, token) -> httpx.Response:
    return await http.get(f"{sb.origin}{READ}", params={"fields": "id"}, headers=auth(token))


@pytest.mark.parametrize(
    ("edition", "users", "allowance", "in_flight"),
    [
        ("free", 3, 5_000, 5),
        ("standard", 4, 51_000, 10),
        ("professional", 2, 51_000, 15),
        ("enterprise", 3, 53_000, 20),
        ("ultimate", 1, 51_000, 25),
    ],
)
async def test_edition_presets(sandbox: SandboxControl, edition, users, allowance, in_flight):
    org = await sandbox.set_credits("crm", edition=edition, users=users)
    assert (org["allowance"], org["max_in_flight"]) == (allowance, in_flight)


async def test_desk_has_its_own_presets(sandbox: SandboxControl):
    enterprise = await sandbox.set_credits("desk", edition="enterprise", users=2)
    assert enterprise["allowance"] == 102_000
    professional = await sandbox.set_credits("desk", edition="professional", users=2)
    assert professional["allowance"] == 76_000
    free = await sandbox.set_credits("desk", edition="free")
    assert free["allowance"] == 5_000


async def test_every_call_counts_per_kind(sandbox: SandboxControl, http, token):
    await _read(http, sandbox, token)
    await http.get(f"{sandbox.origin}/crm/v8/actions/watch", headers=auth(token))
    await http.get(f"{sandbox.origin}/api/v1/webhooks", headers=auth(token, orgId=DEMO_DESK_ORG_ID))
    await http.get(f"{sandbox.origin}{READ}", headers=auth("1000.dead.token"))  # not billable
    crm = await sandbox.credits("crm")
    assert crm["calls_by_kind"] == {"crm.records": 1, "crm.watch": 1}
    assert crm["used"] == 2 and crm["allowance"] is None  # no edition: counted, not limited
    desk = await sandbox.credits("desk")
    assert desk["calls_by_kind"] == {"desk.webhooks": 1}


async def test_header_from_half_spent_then_429_until_the_window_rolls(
    sandbox: SandboxControl, http, token
):
    await sandbox.set_credits("crm", allowance=4)
    first = await _read(http, sandbox, token)
    assert "X-API-CREDITS-REMAINING" not in first.headers
    second = await _read(http, sandbox, token)
    assert second.headers["X-API-CREDITS-REMAINING"] == "2"
    await _read(http, sandbox, token)
    fourth = await _read(http, sandbox, token)
    assert fourth.headers["X-API-CREDITS-REMAINING"] == "0"
    refused = await _read(http, sandbox, token)
    assert refused.status_code == 429
    body = refused.json()
    assert (body["code"], body["status"]) == ("TOO_MANY_REQUESTS", "error")
    assert 0 < body["details"]["retry_after"] <= 24 * 3600
    org = await sandbox.credits("crm")
    assert (org["used"], org["remaining"], org["rejected"]) == (4, 0, {"credits": 1})
    await sandbox.advance_clock(24 * 3600 + 1)
    token = await access_token(http, sandbox)
    assert (await _read(http, sandbox, token)).status_code == 200


async def test_desk_refusal_has_desks_shape(sandbox: SandboxControl, http, token):
    await sandbox.set_credits("desk", allowance=1)
    headers = auth(token, orgId=DEMO_DESK_ORG_ID)
    assert (await http.get(f"{sandbox.origin}/api/v1/webhooks", headers=headers)).is_success
    refused = await http.get(f"{sandbox.origin}/api/v1/webhooks", headers=headers)
    assert refused.status_code == 429
    assert refused.json()["errorCode"] == "TOO_MANY_REQUESTS"


async def test_calls_in_flight_past_the_edition_are_refused(sandbox: SandboxControl, http, token):
    await sandbox.set_credits("crm", edition="free")
    await sandbox.latency("crm.records", 400, count=None)
    answers = await asyncio.gather(*(_read(http, sandbox, token) for _ in range(8)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 5 + [429] * 3
    org = await sandbox.credits("crm")
    assert org["rejected"] == {"concurrency": 3} and org["in_flight"] == 0


async def test_a_handler_may_charge_more(sandbox: SandboxControl):
    # COQL's 1/2/3 credits come through sandbox.credits.charge; the unit test of the rule.
    from aiohttp.test_utils import make_mocked_request

    from sandbox.credits import charge, credits_of

    request = make_mocked_request("POST", "/crm/v8/coql")
    assert credits_of(request) == 1
    charge(request, 3)
    assert credits_of(request) == 3


async def test_bad_settings_are_refused(sandbox: SandboxControl):
    for bad in ({"edition": "platinum"}, {"allowance": 0}, {"users": -1}):
        with pytest.raises(SandboxControlError):
            await sandbox.set_credits("crm", **bad)  # type: ignore[arg-type]
    with pytest.raises(SandboxControlError):
        await sandbox.set_credits("crm", org="nobody", edition="free")
