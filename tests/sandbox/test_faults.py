"""Injected faults, per route: latency, 500s, hangs, resets, throttles, bad bodies."""

from __future__ import annotations

import time

import httpx
import pytest

from sandbox.control.client import DEMO_DESK_ORG_ID, DEMO_REFRESH_TOKEN, SandboxControl
from tests.sandbox.conftest import access_token, auth, refresh

WATCH = "/crm/v8/actions/watch"


async def test_status_500_for_next_n_calls(sandbox: SandboxControl, http: httpx.AsyncClient):
    await sandbox.fault("token", "status_500", count=2)
    for _ in range(2):
        response = await refresh(http, sandbox)
        assert response.status_code == 500
        assert "access_token" not in response.text
    assert (await refresh(http, sandbox)).status_code == 200
    assert await sandbox.mint_count(DEMO_REFRESH_TOKEN) == 1
    assert await sandbox.token_outcomes() == {"fault.status_500": 2, "success": 1}
    assert await sandbox.faults() == []


async def test_fault_until_cleared(sandbox: SandboxControl, http: httpx.AsyncClient):
    await sandbox.fault("token", "status_500", count=None)
    for _ in range(3):
        assert (await refresh(http, sandbox)).status_code == 500
    assert len(await sandbox.faults()) == 1
    await sandbox.clear_faults("token")
    assert (await refresh(http, sandbox)).status_code == 200


@pytest.mark.slow
async def test_latency(sandbox: SandboxControl, http: httpx.AsyncClient):
    # A second's delay, once: the second call's bound is loose enough for a loaded machine
    # and still far below the delay it must not have had.
    await sandbox.latency("token", 1000, count=1)
    started = time.monotonic()
    assert (await refresh(http, sandbox)).status_code == 200
    assert time.monotonic() - started >= 1.0
    started = time.monotonic()
    await refresh(http, sandbox)
    assert time.monotonic() - started < 0.8


@pytest.mark.slow
async def test_hang_until_client_gives_up(sandbox: SandboxControl, http: httpx.AsyncClient):
    await sandbox.fault("token", "hang")
    with pytest.raises(httpx.ReadTimeout):
        await refresh_with_timeout(sandbox, 0.3)
    # Nothing was minted and the next call is normal.
    assert await sandbox.mint_count(DEMO_REFRESH_TOKEN) == 0
    assert (await refresh(http, sandbox)).status_code == 200


@pytest.mark.slow
async def test_hang_for_seconds_then_answer(sandbox: SandboxControl, http: httpx.AsyncClient):
    await sandbox.fault("token", "hang", seconds=0.5)
    with pytest.raises(httpx.ReadTimeout):
        await refresh_with_timeout(sandbox, 0.2)
    await sandbox.fault("token", "hang", seconds=0.2)
    started = time.monotonic()
    assert (await refresh(http, sandbox)).status_code == 200
    assert time.monotonic() - started >= 0.2


async def refresh_with_timeout(sandbox: SandboxControl, seconds: float) -> httpx.Response:
    async with httpx.AsyncClient(timeout=seconds) as client:
        return await refresh(client, sandbox)


async def test_reset_connection(sandbox: SandboxControl, http: httpx.AsyncClient):
    await sandbox.fault("token", "reset")
    with pytest.raises(httpx.TransportError):
        await refresh(http, sandbox)
    assert await sandbox.mint_count(DEMO_REFRESH_TOKEN) == 0
    assert await sandbox.token_outcomes() == {"fault.reset": 1}
    [call] = await sandbox.calls("token")
    assert call.status is None
    assert (await refresh(http, sandbox)).status_code == 200


async def test_reset_after_minting(sandbox: SandboxControl, http: httpx.AsyncClient):
    # Zoho minted, the client never heard: the mint still counts against the budget.
    await sandbox.fault("token", "reset", when="after")
    with pytest.raises(httpx.TransportError):
        await refresh(http, sandbox)
    assert await sandbox.mint_count(DEMO_REFRESH_TOKEN) == 1
    assert await sandbox.token_outcomes() == {"success": 1}


async def test_token_throttle_fault(sandbox: SandboxControl, http: httpx.AsyncClient):
    await sandbox.fault("token", "throttle")
    response = await refresh(http, sandbox)
    assert response.status_code == 200
    assert response.json()["error"] == "Access Denied"
    assert await sandbox.token_outcomes() == {"fault.throttle": 1}


async def test_no_access_token(sandbox: SandboxControl, http: httpx.AsyncClient):
    await sandbox.fault("token", "no_access_token")
    response = await refresh(http, sandbox)
    assert response.status_code == 200
    assert "access_token" not in response.json()
    assert "api_domain" in response.json()


@pytest.mark.parametrize("kind", ["malformed", "non_json"])
async def test_bad_bodies(sandbox: SandboxControl, http: httpx.AsyncClient, kind: str):
    await sandbox.fault("token", kind)
    response = await refresh(http, sandbox)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


async def test_crm_faults(sandbox: SandboxControl, http: httpx.AsyncClient):
    token = await access_token(http, sandbox)
    url = f"{sandbox.origin}{WATCH}"
    await sandbox.fault("crm.watch", "throttle")
    throttled = await http.get(url, headers=auth(token))
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "RATE_LIMIT_EXCEEDED"
    await sandbox.fault("crm.watch", "status_500")
    failed = await http.get(url, headers=auth(token))
    assert failed.status_code == 500
    assert failed.json() == {
        "code": "INTERNAL_ERROR",
        "details": {},
        "message": "Internal Server Error",
        "status": "error",
    }
    await sandbox.fault("crm.watch", "non_json")
    assert (
        (await http.get(url, headers=auth(token))).headers["content-type"].startswith("text/html")
    )
    await sandbox.fault("crm.users", "reset")
    with pytest.raises(httpx.TransportError):
        await http.get(f"{sandbox.origin}/crm/v8/users", headers=auth(token))
    assert (await http.get(url, headers=auth(token))).status_code == 200


async def test_desk_faults(sandbox: SandboxControl, http: httpx.AsyncClient):
    token = await access_token(http, sandbox)
    headers = auth(token, orgId=DEMO_DESK_ORG_ID)
    await sandbox.fault("desk.webhooks", "throttle")
    throttled = await http.get(f"{sandbox.origin}/api/v1/webhooks", headers=headers)
    assert throttled.status_code == 429
    assert throttled.json()["errorCode"] == "TOO_MANY_REQUESTS"
    await sandbox.fault("desk.orgs", "status_500")
    failed = await http.get(f"{sandbox.origin}/api/v1/organizations", headers=headers)
    assert failed.status_code == 500
    assert failed.json()["errorCode"] == "INTERNAL_SERVER_ERROR"
    await sandbox.fault("desk.webhooks", "malformed")
    hooks = await http.get(f"{sandbox.origin}/api/v1/webhooks", headers=headers)
    with pytest.raises(ValueError):
        hooks.json()


async def test_revoke_fault(sandbox: SandboxControl, http: httpx.AsyncClient):
    await sandbox.fault("revoke", "status_500")
    response = await http.post(
        f"{sandbox.origin}/oauth/v2/token/revoke", params={"token": DEMO_REFRESH_TOKEN}
    )
    assert response.status_code == 500
    assert not (await sandbox.mint_stats(DEMO_REFRESH_TOKEN)).revoked


@pytest.mark.parametrize(
    ("route", "kind", "extra"),
    [
        ("nope", "status_500", {}),
        ("token", "explode", {}),
        ("crm.watch", "no_access_token", {}),
        ("token", "latency", {}),
        ("token", "status_500", {"count": 0}),
        ("token", "status_500", {"when": "during"}),
    ],
)
async def test_bad_fault_requests_are_400(sandbox: SandboxControl, route, kind, extra):
    from sandbox.control.client import SandboxControlError

    with pytest.raises(SandboxControlError) as info:
        await sandbox.fault(route, kind, **extra)
    assert info.value.status == 400


async def test_reset_clears_faults(sandbox: SandboxControl, http: httpx.AsyncClient):
    await sandbox.fault("token", "status_500", count=None)
    await sandbox.reset()
    assert (await refresh(http, sandbox)).status_code == 200
