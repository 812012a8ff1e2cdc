"""The accounts server: both grants, Zoho's 200-status errors, limits, revocation, clock."""

from __future__ import annotations

import httpx
import pytest

from sandbox.control.client import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_REFRESH_TOKEN,
    SandboxControl,
)
from tests.sandbox.conftest import access_token, auth, refresh

THROTTLE_ERROR = "Access Denied"


async def test_refresh_grant_in_form_body(sandbox: SandboxControl, http: httpx.AsyncClient):
    response = await refresh(http, sandbox)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "api_domain", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["api_domain"] == sandbox.origin
    assert "ZohoCRM.notifications.READ" in body["scope"].split()
    assert body["access_token"].startswith("1000.")
    assert await sandbox.mint_count(DEMO_REFRESH_TOKEN) == 1


async def test_refresh_grant_in_query_string(sandbox: SandboxControl, http: httpx.AsyncClient):
    response = await refresh(http, sandbox, in_query=True)
    assert "access_token" in response.json()


@pytest.mark.parametrize(
    ("client_id", "client_secret", "refresh_token", "error"),
    [
        ("1000.NOPE", DEMO_CLIENT_SECRET, DEMO_REFRESH_TOKEN, "invalid_client"),
        (DEMO_CLIENT_ID, "wrong", DEMO_REFRESH_TOKEN, "invalid_client_secret"),
        (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, "1000.unknown.refresh", "invalid_code"),
    ],
)
async def test_errors_are_http_200(
    sandbox: SandboxControl,
    http: httpx.AsyncClient,
    client_id: str,
    client_secret: str,
    refresh_token: str,
    error: str,
):
    response = await refresh(
        http, sandbox, refresh_token, client_id=client_id, client_secret=client_secret
    )
    assert response.status_code == 200
    assert response.json() == {"error": error}
    assert (await sandbox.token_outcomes()) == {error: 1}
    assert await sandbox.mint_count(DEMO_REFRESH_TOKEN) == 0


async def test_missing_parameters_never_crash(sandbox: SandboxControl, http: httpx.AsyncClient):
    assert (await http.post(sandbox.token_url)).json() == {"error": "invalid_client"}
    response = await http.post(
        sandbox.token_url,
        data={"client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET},
    )
    assert response.json() == {"error": "unsupported_grant_type"}
    response = await http.post(
        sandbox.token_url, content=b"\xff\xfe", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 200
    assert response.json() == {"error": "invalid_client"}


async def test_authorization_code_grant_is_single_use(
    sandbox: SandboxControl, http: httpx.AsyncClient
):
    code = await sandbox.grant_code(
        user="alice",
        scopes=["ZohoCRM.notifications.READ"],
        redirect_uri="https://app.example/cb",
    )
    form = {
        "grant_type": "authorization_code",
        "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_CLIENT_SECRET,
        "code": code,
        "redirect_uri": "https://app.example/cb",
    }
    body = (await http.post(sandbox.token_url, data=form)).json()
    assert set(body) == {
        "access_token",
        "refresh_token",
        "api_domain",
        "token_type",
        "expires_in",
        "scope",
    }
    assert body["scope"] == "ZohoCRM.notifications.READ"
    assert await sandbox.mint_count(body["refresh_token"]) == 1
    # The new refresh token works; the code does not work twice.
    assert "access_token" in (await refresh(http, sandbox, body["refresh_token"])).json()
    assert (await http.post(sandbox.token_url, data=form)).json() == {"error": "invalid_code"}


async def test_authorization_code_checks_redirect_uri(
    sandbox: SandboxControl, http: httpx.AsyncClient
):
    code = await sandbox.grant_code(redirect_uri="https://app.example/cb")
    form = {
        "grant_type": "authorization_code",
        "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_CLIENT_SECRET,
        "code": code,
        "redirect_uri": "https://evil.example/cb",
    }
    body = (await http.post(sandbox.token_url, params=form)).json()
    assert body == {"error": "invalid_redirect_uri"}


async def test_authorization_code_expires(sandbox: SandboxControl, http: httpx.AsyncClient):
    code = await sandbox.grant_code(ttl_seconds=120)
    await sandbox.advance_clock(121)
    form = {
        "grant_type": "authorization_code",
        "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_CLIENT_SECRET,
        "code": code,
    }
    assert (await http.post(sandbox.token_url, params=form)).json() == {"error": "invalid_code"}


async def test_revoke_then_refresh_is_invalid_code(
    sandbox: SandboxControl, http: httpx.AsyncClient
):
    rt = await sandbox.add_refresh_token(user="bob")
    token = await access_token(http, sandbox, rt)
    response = await http.post(f"{sandbox.origin}/oauth/v2/token/revoke", params={"token": rt})
    assert response.status_code == 200
    assert response.json() == {"status": "success"}
    assert (await refresh(http, sandbox, rt)).json() == {"error": "invalid_code"}
    # Its access tokens die with it.
    api = await http.get(f"{sandbox.origin}/crm/v8/actions/watch", headers=auth(token))
    assert api.status_code == 401
    assert (await sandbox.calls("revoke"))[0].refresh_token == rt


async def test_revoke_accepts_form_body_like_the_sdk(
    sandbox: SandboxControl, http: httpx.AsyncClient
):
    rt = await sandbox.add_refresh_token()
    response = await http.post(f"{sandbox.origin}/oauth/v2/token/revoke", data={"token": rt})
    assert response.json() == {"status": "success"}
    assert (await sandbox.mint_stats(rt)).revoked


async def test_control_revoke(sandbox: SandboxControl, http: httpx.AsyncClient):
    assert await sandbox.revoke_refresh_token(DEMO_REFRESH_TOKEN)
    assert (await refresh(http, sandbox)).json() == {"error": "invalid_code"}


@pytest.mark.slow
async def test_throttle_after_ten_mints_in_ten_minutes(
    sandbox: SandboxControl, http: httpx.AsyncClient
):
    for _ in range(10):
        assert "access_token" in (await refresh(http, sandbox)).json()
    response = await refresh(http, sandbox)
    assert response.status_code == 200
    assert response.json()["error"] == THROTTLE_ERROR
    assert "error_description" in response.json()
    stats = await sandbox.mint_stats(DEMO_REFRESH_TOKEN)
    assert (stats.minted_total, stats.minted_in_window) == (10, 10)
    assert (await sandbox.token_outcomes()) == {"success": 10, "throttled": 1}
    # The window rolls with the sandbox clock: no sleeping.
    await sandbox.advance_clock(601)
    assert await sandbox.mint_count_in_window(DEMO_REFRESH_TOKEN) == 0
    assert "access_token" in (await refresh(http, sandbox)).json()


@pytest.mark.slow
async def test_throttle_window_is_rolling(sandbox: SandboxControl, http: httpx.AsyncClient):
    for _ in range(5):
        await refresh(http, sandbox)
    await sandbox.advance_clock(300)
    for _ in range(5):
        await refresh(http, sandbox)
    assert (await refresh(http, sandbox)).json()["error"] == THROTTLE_ERROR
    await sandbox.advance_clock(301)  # the first five leave the window
    assert await sandbox.mint_count_in_window(DEMO_REFRESH_TOKEN) == 5
    assert "access_token" in (await refresh(http, sandbox)).json()


@pytest.mark.slow
async def test_throttle_status_configurable(sandbox: SandboxControl, http: httpx.AsyncClient):
    await sandbox.configure(throttle_status=400, mint_limit=1)
    await refresh(http, sandbox)
    response = await refresh(http, sandbox)
    assert response.status_code == 400
    assert response.json()["error"] == THROTTLE_ERROR


@pytest.mark.slow
async def test_sixteenth_token_evicts_the_oldest(sandbox: SandboxControl, http: httpx.AsyncClient):
    await sandbox.configure(mint_limit=100)
    tokens = [await access_token(http, sandbox) for _ in range(16)]
    live = await sandbox.live_access_tokens(DEMO_REFRESH_TOKEN)
    assert live == tokens[1:]
    url = f"{sandbox.origin}/crm/v8/actions/watch"
    evicted = await http.get(url, headers=auth(tokens[0]))
    assert evicted.status_code == 401
    assert evicted.json()["code"] == "INVALID_TOKEN"
    assert (await http.get(url, headers=auth(tokens[1]))).status_code == 200
    assert (await sandbox.access_token_status(tokens[0]))["reason"] == "evicted"


@pytest.mark.slow
async def test_lifetime_sequence_and_expiry(sandbox: SandboxControl, http: httpx.AsyncClient):
    rt = await sandbox.add_refresh_token(lifetimes=[122, 3600])
    first = (await refresh(http, sandbox, rt)).json()
    second = (await refresh(http, sandbox, rt)).json()
    third = (await refresh(http, sandbox, rt)).json()
    assert [first["expires_in"], second["expires_in"], third["expires_in"]] == [122, 3600, 3600]
    url = f"{sandbox.origin}/crm/v8/actions/watch"
    assert (await http.get(url, headers=auth(first["access_token"]))).status_code == 200
    await sandbox.advance_clock(123)
    expired = await http.get(url, headers=auth(first["access_token"]))
    assert expired.status_code == 401
    assert expired.json()["code"] == "INVALID_TOKEN"
    assert (await http.get(url, headers=auth(second["access_token"]))).status_code == 200


@pytest.mark.slow
async def test_legacy_mode_answers_milliseconds(sandbox: SandboxControl, http: httpx.AsyncClient):
    rt = await sandbox.add_refresh_token(legacy=True, lifetimes=[3600])
    body = (await refresh(http, sandbox, rt)).json()
    assert body["expires_in"] == 3_600_000
    assert body["expires_in_sec"] == 3600


async def test_api_origin_is_returned_and_enforced(
    sandbox: SandboxControl, http: httpx.AsyncClient
):
    other = sandbox.origin.replace("127.0.0.1", "localhost")
    rt = await sandbox.add_refresh_token(api_origin=other)
    body = (await refresh(http, sandbox, rt)).json()
    assert body["api_domain"] == other
    # The same sandbox under a different origin plays the role of another data centre.
    wrong = await http.get(
        f"{sandbox.origin}/crm/v8/actions/watch", headers=auth(body["access_token"])
    )
    assert wrong.status_code == 401
    right = await http.get(f"{other}/crm/v8/actions/watch", headers=auth(body["access_token"]))
    assert right.status_code == 200


@pytest.mark.slow
async def test_twenty_first_refresh_token_deletes_the_oldest(
    sandbox: SandboxControl, http: httpx.AsyncClient
):
    tokens = [await sandbox.add_refresh_token(user="carol") for _ in range(21)]
    assert (await refresh(http, sandbox, tokens[0])).json() == {"error": "invalid_code"}
    assert "access_token" in (await refresh(http, sandbox, tokens[1])).json()


@pytest.mark.slow
async def test_invalidate_access_token(sandbox: SandboxControl, http: httpx.AsyncClient):
    token = await access_token(http, sandbox)
    assert await sandbox.invalidate_access_token(token)
    response = await http.get(f"{sandbox.origin}/crm/v8/actions/watch", headers=auth(token))
    assert response.status_code == 401
    assert (await sandbox.access_token_status(token)) == {
        "valid": False,
        "reason": "invalidated",
    }


async def test_token_calls_are_recorded(sandbox: SandboxControl, http: httpx.AsyncClient):
    await refresh(http, sandbox)
    [call] = await sandbox.calls("token")
    assert call.grant_type == "refresh_token"
    assert call.refresh_token == DEMO_REFRESH_TOKEN
    assert call.outcome == "success"
    assert call.status == 200
    assert (await sandbox.call_counts()) == {"token": 1}


@pytest.mark.parametrize(("method", "path"), [("GET", "/oauth/v2/token"), ("GET", "/nowhere")])
async def test_unknown_routes_answer_json_404(
    sandbox: SandboxControl, http: httpx.AsyncClient, method: str, path: str
):
    response = await http.request(method, f"{sandbox.origin}{path}")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found"}
