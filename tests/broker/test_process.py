"""The broker as an operator runs it: a real process, grpcurl, signals, logs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.control.client import SandboxControl
from sandbox.demo.tenant import DEMO_REFRESH_TOKEN, DEMO_SCOPES
from servicekit.healthprobe import check
from tests.plugins.processes import ServiceProcess

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).with_name("grpcurl"))


def grpcurl(address: str, *args: str, data: dict[str, object] | None = None
            ) -> subprocess.CompletedProcess[str]:
    command = [GRPCURL, "-plaintext"]
    if data is not None:
        command += ["-d", json.dumps(data)]
    return subprocess.run([*command, address, *args], capture_output=True, text=True,
                          timeout=30, check=False)


@pytest.fixture
def broker_process(broker_env: dict[str, str], tmp_path: Path) -> ServiceProcess:
    env = {**broker_env, "BROKER_DATABASE_URL": f"sqlite:///{tmp_path}/proc.db",
           "LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG"}
    env.pop("BROKER_ENCRYPTION_KEY")  # SQLite with no key: a generated key file
    process = ServiceProcess("broker", env)
    yield process
    process.terminate()


@pytest.mark.slow
def test_grpcurl_lists_describes_and_calls(broker_process: ServiceProcess,
                                            sandbox: SandboxControl) -> None:
    address = broker_process.address
    listed = grpcurl(address, "list")
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) >= {
        "zoho.broker.v1.TokenBrokerService", "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    described = grpcurl(address, "describe", "zoho.broker.v1.GetTokenRequest")
    assert "min_ttl_seconds" in described.stdout
    created = grpcurl(address, "zoho.broker.v1.TokenBrokerService/CreateConnection", data={
        "user_id": "demo", "accounts_server": sandbox.origin, "api_domain": sandbox.origin,
        "refresh_token": DEMO_REFRESH_TOKEN, "scopes": list(DEMO_SCOPES),
    })
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["status"] == "CONNECTION_STATUS_ACTIVE"
    token = grpcurl(address, "zoho.broker.v1.TokenBrokerService/GetToken",
                    data={"user_id": "demo", "app_type": "APP_TYPE_CRM"})
    assert json.loads(token.stdout)["access_token"]


@pytest.mark.slow
def test_grpcurl_shows_the_reason_of_an_error(broker_process: ServiceProcess) -> None:
    failed = grpcurl(broker_process.address, "zoho.broker.v1.TokenBrokerService/GetToken",
                     data={"user_id": "nobody"})
    assert failed.returncode != 0
    assert "FailedPrecondition" in failed.stderr
    assert "Zoho is not connected for this app. Please reconnect." in failed.stderr
    assert '"reason":"NOT_CONNECTED"' in failed.stderr.replace(" ", "")


@pytest.mark.slow
def test_health_reports_each_service(broker_process: ServiceProcess) -> None:
    assert check(broker_process.address, "") == "SERVING"
    assert check(broker_process.address, "zoho.broker.v1.TokenBrokerService") == "SERVING"


@pytest.mark.slow
def test_sigterm_drains_and_exits_zero(broker_process: ServiceProcess) -> None:
    assert broker_process.terminate() == 0
    assert "shutting down" in broker_process.stderr


@pytest.mark.slow
async def test_logs_never_contain_a_token_or_secret(
    broker_process: ServiceProcess, sandbox: SandboxControl
) -> None:
    address = broker_process.address
    refresh = await sandbox.add_refresh_token(lifetimes=[30, 3600])
    grpcurl(address, "zoho.broker.v1.TokenBrokerService/CreateConnection", data={
        "user_id": "demo", "accounts_server": sandbox.origin, "api_domain": sandbox.origin,
        "refresh_token": refresh,
    })
    await sandbox.fault("token", "status_500", count=1)
    tokens = [json.loads(grpcurl(address, "zoho.broker.v1.TokenBrokerService/GetToken",
                                 data={"user_id": "demo"}).stdout)["access_token"]]
    await sandbox.revoke_refresh_token(refresh)
    grpcurl(address, "zoho.broker.v1.TokenBrokerService/RefreshToken",
            data={"user_id": "demo", "rejected_access_token": tokens[0]})
    grpcurl(address, "zoho.broker.v1.TokenBrokerService/DeleteConnection",
            data={"user_id": "demo", "revoke": True})
    assert broker_process.terminate() == 0
    logs = broker_process.stderr
    assert logs.strip(), "the broker logged nothing: the check below would prove nothing"
    for line in logs.splitlines():
        json.loads(line)  # LOG_FORMAT=json: one object a line
    for secret in (refresh, *tokens, "sandbox-secret"):
        assert secret not in logs


@pytest.mark.slow
def test_migrate_command_only_migrates(broker_env: dict[str, str], tmp_path: Path) -> None:
    env = {**broker_env, "BROKER_DATABASE_URL": f"sqlite:///{tmp_path}/m.db"}
    done = subprocess.run([sys.executable, "-m", "broker", "migrate"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout
    assert (tmp_path / "m.db").exists()


@pytest.mark.slow
def test_bad_configuration_stops_with_the_variable_named(broker_env: dict[str, str]) -> None:
    env = {**broker_env, "BROKER_REFRESH_WINDOW_SECONDS": "-5"}
    done = subprocess.run([sys.executable, "-m", "broker"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "BROKER_REFRESH_WINDOW_SECONDS" in done.stderr


@pytest.mark.slow
def test_a_bad_log_level_stops_with_exit_2_naming_it(broker_env: dict[str, str]) -> None:
    # Before servicekit's shared settings, LOG_LEVEL reached logging unchecked: a traceback.
    env = {**broker_env, "LOG_LEVEL": "LOUD"}
    done = subprocess.run([sys.executable, "-m", "broker"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "configuration error: LOG_LEVEL" in done.stderr
    assert "Traceback" not in done.stderr
