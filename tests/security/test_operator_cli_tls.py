"""The operator commands against a TLS and a mutual-TLS broker (issue 11, item 6).

Injected: the operator's certificate by flags and by ZOHO_BROKER_TLS_*, no TLS options
against a TLS broker, a certificate the policy does not name, nothing listening, and the
broker's own mint budget spent. Asserted: exit codes and the sentence the operator reads.
"""

from __future__ import annotations

import grpc
import pytest

from broker.operator.explanations import explain
from sandbox.control.client import SandboxControl
from tests.operator_runner import zoho_broker
from tests.plugins.broker_fixtures import MakeBroker
from tests.security.conftest import Pki
from tests.security.test_tls_and_policy import create_request, tls_env
from zoho.broker.v1 import broker_pb2_grpc


def operator_flags(pki: Pki, who: str = "operator") -> list[str]:
    issued = getattr(pki, who)
    return ["--tls-ca", str(pki.ca), "--tls-cert", str(issued.cert), "--tls-key", str(issued.key)]


@pytest.mark.slow
async def test_the_operator_lists_connections_of_a_mutual_tls_broker(
    make_broker: MakeBroker, sandbox: SandboxControl, pki: Pki,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    handle = await make_broker(**tls_env(pki, mutual=True))
    credentials = grpc.ssl_channel_credentials(pki.ca.read_bytes(), *reversed(pki.operator.pair()))
    async with grpc.aio.secure_channel(handle.address, credentials) as channel:
        await broker_pb2_grpc.TokenBrokerServiceStub(channel).CreateConnection(
            create_request(sandbox), timeout=10)

    by_flags = await zoho_broker(capsys, "connections", "list", "--broker", handle.address,
                                 *operator_flags(pki))
    assert by_flags.returncode == 0, by_flags.stderr
    assert "demo" in by_flags.stdout and "1 connection(s)" in by_flags.stdout

    monkeypatch.setenv("ZOHO_BROKER_TARGET", handle.address)
    monkeypatch.setenv("ZOHO_BROKER_TLS_CA", str(pki.ca))
    monkeypatch.setenv("ZOHO_BROKER_TLS_CERT", str(pki.operator.cert))
    monkeypatch.setenv("ZOHO_BROKER_TLS_KEY", str(pki.operator.key))
    by_env = await zoho_broker(capsys, "connections", "show", "demo")
    assert by_env.returncode == 0, by_env.stderr
    assert "ACTIVE" in by_env.stdout


@pytest.mark.slow
async def test_a_tls_failure_is_not_reported_as_a_broker_that_is_down(
    make_broker: MakeBroker, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    handle = await make_broker(**tls_env(pki, mutual=True))
    plaintext = await zoho_broker(capsys, "connections", "list", "--broker", handle.address)
    assert plaintext.returncode == 1
    assert "TLS handshake failed" in plaintext.stderr, plaintext.stderr
    assert "is it running" not in plaintext.stderr.lower()
    assert "--tls-ca" in plaintext.stderr

    no_cert = await zoho_broker(capsys, "connections", "list", "--broker", handle.address,
                                "--tls-ca", str(pki.ca))
    assert no_cert.returncode == 1
    assert "TLS handshake failed" in no_cert.stderr, no_cert.stderr

    stranger = await zoho_broker(capsys, "connections", "list", "--broker", handle.address,
                                 *operator_flags(pki, "stranger"))
    assert stranger.returncode == 1
    assert "The broker refused this caller" in stranger.stderr


async def test_nothing_listening_and_unreadable_tls_files_say_so(
    pki: Pki, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    down = await zoho_broker(capsys, "connections", "list", "--broker", "127.0.0.1:1")
    assert down.returncode == 1
    assert "nothing accepted the connection" in down.stderr, down.stderr
    missing = await zoho_broker(capsys, "connections", "list", "--broker", "127.0.0.1:1",
                                "--tls-ca", str(tmp_path / "absent.pem"))
    assert missing.returncode == 2
    assert "ZOHO_BROKER_TLS_CA" in missing.stderr and "absent.pem" in missing.stderr
    half = await zoho_broker(capsys, "connections", "list", "--tls-ca", str(pki.ca),
                             "--tls-cert", str(pki.operator.cert))
    assert half.returncode == 2
    assert "ZOHO_BROKER_TLS_KEY" in half.stderr


async def test_the_brokers_own_budget_is_not_called_zoho(
    make_broker: MakeBroker, sandbox: SandboxControl
) -> None:
    handle = await make_broker()
    refresh = await sandbox.add_refresh_token()
    for _ in range(10):
        await handle.connect(refresh_token=refresh)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await handle.connect(refresh_token=refresh)
    sentence = explain(caught.value, broker=handle.address)
    assert sentence.startswith("the broker's own budget is limiting new tokens"), sentence

