"""`python -m notifier` as deployed: the listening line, a real call, SIGTERM, bad config."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import grpc
import pytest

from tests.notifier.helpers import CRM, DESK, collect, list_request
from tests.plugins.processes import REPO_ROOT, ServiceProcess
from zoho.notifier.v1 import notifier_pb2_grpc


@pytest.mark.slow
async def test_serves_real_calls_logs_json_without_secrets_and_stops_on_sigterm(
    sandbox, broker, tmp_path
) -> None:
    await broker.connect()
    env = {
        "NOTIFIER_LISTEN": "127.0.0.1:0",
        "NOTIFIER_BROKER_TARGET": broker.address,
        "ZOHO_EXTRA_ORIGINS": sandbox.origin,
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",
        "NOTIFIER_INGRESS_LISTEN": "127.0.0.1:0",
        "NOTIFIER_DATABASE_URL": f"sqlite:///{tmp_path}/notifier.db",
    }
    process = await asyncio.to_thread(ServiceProcess, "notifier", env)
    try:
        async with grpc.aio.insecure_channel(process.address) as channel:
            stub = notifier_pb2_grpc.NotifierServiceStub(channel)
            assert len(await collect(stub, list_request(app_type=DESK))) == 5
            assert len(await collect(stub, list_request(app_type=CRM))) == 250
    finally:
        code = await asyncio.to_thread(process.terminate)
    assert code == 0
    lines = [json.loads(line) for line in process.stderr.splitlines() if line.strip()]
    assert lines and all(entry["service"] == "notifier" for entry in lines)
    secrets = {c.token for c in await sandbox.calls() if c.token}
    secrets |= {c["token"] for c in await sandbox.crm_channels() if c["token"]}
    assert not [s for s in secrets if s in process.stderr]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NOTIFIER_LISTEN", "nowhere"),
        ("NOTIFIER_ZOHO_MAX_ATTEMPTS", "many"),
        ("ZOHO_EXTRA_ORIGINS", "http://127.0.0.1:8780/path"),
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "LOUD"),
        ("NOTIFIER_METRICS_LISTEN", "9100"),
        ("NOTIFIER_METRICS_PORT", "70000"),
        ("NOTIFIER_GRACE_SECONDS", "forever"),
        ("NOTIFIER_INGRESS_HEADER_TIMEOUT_SECONDS", "never"),
        ("NOTIFIER_INGRESS_MAX_CONNECTIONS", "0"),
        ("NOTIFIER_INGRESS_MAX_FIELDS_PER_EVENT", "-1"),
        ("NOTIFIER_INGRESS_MAX_STORED_BYTES_PER_DELIVERY", "1k"),
        ("NOTIFIER_MAX_STREAMS_PER_ADDRESS", "0"),
    ],
)
def test_a_bad_setting_stops_the_process_naming_the_variable(variable: str, value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "notifier"],
        env={**os.environ, variable: value},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert variable in result.stderr
    assert result.stdout == ""
