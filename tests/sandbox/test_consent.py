"""The sandbox's consent page (`GET /oauth/v2/auth`) and the control API's network allowance."""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from sandbox.app import run_sandbox
from sandbox.control.client import SandboxControl
from sandbox.control.routes import parse_networks
from sandbox.demo.tenant import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

REDIRECT = "http://127.0.0.1:9/callback"


def _auth_params(**overrides: str) -> dict[str, str]:
    params = {
        "scope": "ZohoCRM.notifications.READ,Desk.webhooks.READ",
        "client_id": DEMO_CLIENT_ID,
        "response_type": "code",
        "access_type": "offline",
        "prompt": "consent",
        "redirect_uri": REDIRECT,
        "state": "s-123",
    }
    params.update(overrides)
    return params


async def _authorize(origin: str, **overrides: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"{origin}/oauth/v2/auth", params=_auth_params(**overrides))


def _redirect_query(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@pytest.mark.slow
async def test_consent_redirects_with_a_code_that_exchanges_once_for_the_redirect_uri() -> None:
    async with run_sandbox() as origin:
        back = _redirect_query(await _authorize(origin, sandbox_user="alice"))
        assert back["state"] == "s-123"
        assert back["location"] == "us"
        assert back["accounts-server"] == origin
        token_form = {
            "grant_type": "authorization_code",
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
            "code": back["code"],
        }
        async with httpx.AsyncClient() as client:
            wrong = await client.post(
                f"{origin}/oauth/v2/token",
                data={**token_form, "redirect_uri": "http://elsewhere/cb"},
            )
            assert wrong.json() == {"error": "invalid_redirect_uri"}
            first = await client.post(
                f"{origin}/oauth/v2/token", data={**token_form, "redirect_uri": REDIRECT}
            )
            again = await client.post(
                f"{origin}/oauth/v2/token", data={**token_form, "redirect_uri": REDIRECT}
            )
            body = first.json()
            assert body["scope"] == "ZohoCRM.notifications.READ Desk.webhooks.READ"
            assert body["refresh_token"].startswith("1000.")
            assert again.json() == {"error": "invalid_code"}
            status = await client.post(
                f"{origin}/_sandbox/refresh_tokens/status",
                json={"refresh_token": body["refresh_token"]},
            )
        assert status.json()["user"] == "alice"
        async with SandboxControl(origin) as control:
            assert await control.mint_count(body["refresh_token"]) == 1


@pytest.mark.slow
async def test_consent_errors_are_zoho_like() -> None:
    async with run_sandbox() as origin:
        unknown_client = await _authorize(origin, client_id="1000.NOPE")
        assert unknown_client.status_code == 400
        assert unknown_client.json()["error"] == "invalid_client"
        bad_redirect = await _authorize(origin, redirect_uri="not a url")
        assert bad_redirect.status_code == 400
        assert bad_redirect.json()["error"] == "invalid_redirect_uri"
        denied = _redirect_query(await _authorize(origin, sandbox_consent="deny"))
        assert denied == {"error": "access_denied", "state": "s-123"}
        no_scope = _redirect_query(await _authorize(origin, scope=""))
        assert no_scope["error"] == "invalid_scope"
        token_grant = _redirect_query(await _authorize(origin, response_type="token"))
        assert token_grant["error"] == "unsupported_response_type"


async def test_control_api_refuses_other_networks_unless_allowed() -> None:
    # The peer here is 127.0.0.1, always allowed; the allowance is checked on its own.
    from sandbox.control.routes import _control_allowed

    networks = parse_networks("10.0.0.0/8, 172.16.0.0/12")
    assert networks == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("172.16.0.0/12"))
    assert _control_allowed("172.18.0.5", networks)
    assert not _control_allowed("172.18.0.5", ())
    assert not _control_allowed("192.168.1.2", networks)
    assert _control_allowed("127.0.0.1", ())
    assert _control_allowed("::1", ())


def test_a_bad_control_network_stops_the_sandbox(capsys) -> None:
    from sandbox.cli import main

    assert main(["--listen", "127.0.0.1:0", "--control-from", "10.0.0.0/33"]) == 2
    assert "SANDBOX_CONTROL_FROM" in capsys.readouterr().err
