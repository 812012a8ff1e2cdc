"""The process: CLI flags, SANDBOX_LISTEN, clean stops, the loopback-only control API, logs."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sandbox.app import run_sandbox
from sandbox.control.client import DEMO_REFRESH_TOKEN, SandboxControl, SandboxControlError
from tests.plugins.processes import REPO_ROOT, ServiceProcess
from tests.plugins.sandbox_fixtures import start_sandbox_process
from tests.sandbox.conftest import access_token, auth, refresh


@pytest.mark.slow
async def test_sandbox_listen_env_and_console_script(http: httpx.AsyncClient):
    script = Path(sys.executable).parent / "zoho-sandbox"
    if not script.exists():
        pytest.skip("console script not installed")
    process = ServiceProcess("sandbox", {"SANDBOX_LISTEN": "127.0.0.1:0"}, argv=[str(script)])
    try:
        assert process.address.startswith("127.0.0.1:") and not process.address.endswith(":0")
        async with SandboxControl(process.origin) as sb:
            assert await sb.health()
            assert "access_token" in (await refresh(http, sb)).json()
    finally:
        assert process.terminate() == 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_cleanly(sig: signal.Signals):
    process = start_sandbox_process()
    process.proc.send_signal(sig)
    assert process.proc.wait(timeout=10) == 0
    assert "Traceback" not in process.stderr


@pytest.mark.slow
async def test_no_demo_and_sizes(http: httpx.AsyncClient):
    process = start_sandbox_process("--no-demo")
    try:
        async with SandboxControl(process.origin) as sb:
            assert (await refresh(http, sb)).json() == {"error": "invalid_client"}
            await sb.reset()  # the demo comes back on request
            assert "access_token" in (await refresh(http, sb)).json()
    finally:
        process.terminate()
    process = start_sandbox_process(
        "--demo-crm-items", "7", "--demo-desk-webhooks", "2", "--demo-records", "9"
    )
    origin = process.origin
    try:
        async with SandboxControl(origin) as sb:
            assert len(await sb.crm_channels()) == 7
            assert (await sb.records("crm", "Deals"))["live"] == 9
            assert (await sb.records("desk", "tickets"))["live"] == 9
            await sb.reset(records=3)
            assert (await sb.records("crm", "Leads"))["live"] == 3
            token = await access_token(http, sb)
            hooks = await http.get(
                f"{origin}/api/v1/webhooks", headers=auth(token, orgId="3981311")
            )
            assert len(hooks.json()["data"]) == 2
            await sb.reset(demo=False)
            assert (await refresh(http, sb)).json() == {"error": "invalid_client"}
    finally:
        process.terminate()


@pytest.mark.slow
@pytest.mark.parametrize("listen", ["nonsense", "127.0.0.1:99999", ":80"])
def test_bad_listen_exits_2(listen: str):
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "--listen", listen],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=20,
    )
    assert result.returncode == 2
    assert "--listen" in result.stderr


def _non_loopback_ip() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for UDP connect
        except OSError:
            return None
        ip = str(probe.getsockname()[0])
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


async def test_control_api_refuses_non_loopback_peers(http: httpx.AsyncClient):
    ip = _non_loopback_ip()
    if ip is None:
        pytest.skip("no non-loopback address on this host")
    async with run_sandbox("0.0.0.0", 0) as origin:
        port = origin.rsplit(":", 1)[1]
        remote = await http.post(f"http://{ip}:{port}/_sandbox/reset", json={})
        assert remote.status_code == 403
        # Zoho's own routes answer anyone.
        zoho = await http.post(f"http://{ip}:{port}/oauth/v2/token")
        assert zoho.json() == {"error": "invalid_client"}
        local = await http.post(f"http://127.0.0.1:{port}/_sandbox/reset", json={})
        assert local.status_code == 200


async def test_control_api_bad_input(sandbox: SandboxControl, http: httpx.AsyncClient):
    base = f"{sandbox.origin}/_sandbox"
    assert (await http.post(f"{base}/nope", json={})).status_code == 404
    bad_json = await http.post(f"{base}/clock/advance", content=b"{")
    assert bad_json.status_code == 400
    assert "error" in bad_json.json()
    with pytest.raises(SandboxControlError):
        await sandbox.advance_clock(-5)
    with pytest.raises(SandboxControlError):
        await sandbox.configure(nope=1)
    with pytest.raises(SandboxControlError):
        await sandbox.mint_count("1000.unknown")
    wrong_type = await http.post(f"{base}/refresh_tokens", json={"scopes": "ZohoCRM.users.READ"})
    assert wrong_type.status_code == 400


async def test_advance_clock(sandbox: SandboxControl):
    before = await sandbox.now()
    after = await sandbox.advance_clock(3600)
    assert after - before >= 3600


async def test_tokens_never_reach_logs(caplog: pytest.LogCaptureFixture, http: httpx.AsyncClient):
    caplog.set_level(logging.DEBUG)
    async with run_sandbox() as origin, SandboxControl(origin) as sb:
        await sb.fault("crm.watch", "reset")
        token = await access_token(http, sb)
        with pytest.raises(httpx.TransportError):
            await http.get(f"{origin}/crm/v8/actions/watch", headers=auth(token))
        await http.get(f"{origin}/crm/v8/actions/watch", headers=auth(token))
        await http.post(f"{origin}/oauth/v2/token", params={"refresh_token": DEMO_REFRESH_TOKEN})
    # httpx logs the client's own URLs; only what the server side logs matters here.
    text = "\n".join(
        r.getMessage() + str(r.exc_info or "")
        for r in caplog.records
        if not r.name.startswith(("httpx", "httpcore"))
    )
    assert token not in text
    assert DEMO_REFRESH_TOKEN not in text
    assert "sandbox-secret" not in text
