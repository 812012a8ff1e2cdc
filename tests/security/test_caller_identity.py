"""Which names of a client certificate are the caller's identity under mutual TLS, and a
notifier the broker's policy refuses (issue 11, item 12).

Injected: certificates whose only SANs are a URI or an email, one with no subject at all,
a wildcard, several CNs; a notifier presenting a certificate the policy does not name.
Asserted: the identities counted (DNS SANs; the CN only without a SAN extension), the
broker's PERMISSION_DENIED, and the notifier's NOT_SERVING with its cause logged once.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from notifier.app import NotifierApp
from sandbox.control.client import SandboxControl
from servicekit.caller_policy import certificate_identities
from servicekit.services import NOTIFIER_SERVICE_NAME as SERVICE_NAME
from servicekit.tls import ClientTls, ServerTls
from tests.plugins.broker_fixtures import MakeBroker
from tests.plugins.notifier_fixtures import notifier_config
from tests.rpc_errors import seen
from tests.security.certs import CertificateAuthority, Issued
from tests.security.conftest import Pki
from tests.security.test_tls_and_policy import tls_env
from tests.waiting import until
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc

URI = x509.UniformResourceIdentifier
EMAIL = x509.RFC822Name


def identities(issued: Issued) -> tuple[str, ...]:
    return certificate_identities(issued.cert.read_bytes())


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path)


def test_dns_sans_count_and_the_cn_only_without_a_san(ca: CertificateAuthority) -> None:
    assert identities(ca.issue("operator")) == ("operator",)
    assert identities(ca.issue("ops-box-17", dns_names=("operator",))) == ("operator",)
    # A SAN extension replaces the CN, whatever its types.
    assert identities(ca.issue("operator", other_names=(URI("spiffe://corp/operator"),),
                               stem="uri")) == ()
    assert identities(ca.issue("operator", other_names=(EMAIL("operator@corp.example"),),
                               stem="email")) == ()
    assert identities(ca.issue("x", other_names=(URI("operator"),), stem="bare-uri")) == ()
    # No subject at all: nothing counts, not even a DNS SAN.
    assert identities(ca.issue("", dns_names=("operator",), empty_subject=True,
                               stem="nosubject")) == ()
    assert identities(ca.issue("x", dns_names=("*.corp.example",), stem="wild")) == ()
    assert identities(ca.issue("x", dns_names=("notifier", "*.x", "operator"),
                               stem="mixed")) == ("notifier", "operator")
    assert certificate_identities(b"not a certificate") == ()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["uri_san", "email_san", "no_subject_dns", "no_subject_uri"])
async def test_names_that_do_not_count_get_no_operator_rights(
    make_broker: MakeBroker, ca: CertificateAuthority, case: str
) -> None:
    caller = {
        "uri_san": lambda: ca.issue("operator", other_names=(URI("spiffe://c/operator"),)),
        "email_san": lambda: ca.issue("operator", other_names=(EMAIL("operator@c.example"),)),
        "no_subject_dns": lambda: ca.issue("", dns_names=("operator",), empty_subject=True,
                                           stem="nosubject-dns"),
        "no_subject_uri": lambda: ca.issue("", other_names=(URI("operator"),),
                                           empty_subject=True, stem="nosubject-uri"),
    }[case]()
    server = ca.issue("server", server=True)
    handle = await make_broker(BROKER_TLS_CERT=str(server.cert), BROKER_TLS_KEY=str(server.key),
                               BROKER_TLS_CLIENT_CA=str(ca.ca))
    cert, key = caller.pair()
    credentials = grpc.ssl_channel_credentials(ca.ca.read_bytes(), key, cert)
    async with grpc.aio.secure_channel(handle.address, credentials) as channel:
        stub = broker_pb2_grpc.TokenBrokerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListConnections(broker_pb2.ListConnectionsRequest(), timeout=10)
    error = seen(caught.value)
    assert error.code == grpc.StatusCode.PERMISSION_DENIED
    assert error.metadata["caller"] == ""


async def serving_status(address: str, pki: Pki) -> int:
    credentials = grpc.ssl_channel_credentials(pki.ca.read_bytes())
    async with grpc.aio.secure_channel(address, credentials) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5)
    return int(reply.status)


async def until_status(address: str, pki: Pki, wanted: int) -> None:
    async with asyncio.timeout(10):
        while await serving_status(address, pki) != wanted:
            await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("policy", [None, "notifier=GetToken;operator=*"])
async def test_a_notifier_the_policy_refuses_is_not_serving_and_says_why_once(
    make_broker: MakeBroker, sandbox: SandboxControl, pki: Pki,
    caplog: pytest.LogCaptureFixture, policy: str | None,
) -> None:
    handle = await make_broker(**tls_env(pki, mutual=True, policy=policy))
    # With the default policy the stranger's certificate is refused everything; with the
    # second, even the notifier's own certificate lacks RefreshToken.
    who = pki.stranger if policy is None else pki.notifier
    cert, key = who.pair()
    server_cert, server_key = pki.server.pair()
    app = NotifierApp(notifier_config(
        sandbox.origin, handle.address, tls=ServerTls(server_cert, server_key),
        broker_tls=ClientTls(pki.ca.read_bytes(), cert, key)))
    caplog.set_level(logging.WARNING, logger="notifier.health")
    probes = 0
    check_once = app.health.check_once

    async def counted() -> bool:
        nonlocal probes
        probes += 1
        return await check_once()

    app.health.check_once = counted  # type: ignore[method-assign]
    address = await app.start()
    try:
        await until_status(address, pki, health_pb2.HealthCheckResponse.NOT_SERVING)
        seen_then = probes
        await until(lambda: probes >= seen_then + 3)  # several more probes
        assert await serving_status(address, pki) == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await app.stop(0)
    said = [r.getMessage() for r in caplog.records if r.name == "notifier.health"]
    assert len(said) == 1, said
    assert "caller policy refuses this notifier's certificate" in said[0]
    assert "NOT_SERVING" in said[0]


@pytest.mark.slow
async def test_a_notifier_the_policy_lets_in_is_serving(
    make_broker: MakeBroker, sandbox: SandboxControl, pki: Pki
) -> None:
    handle = await make_broker(**tls_env(pki, mutual=True))
    cert, key = pki.notifier.pair()
    server_cert, server_key = pki.server.pair()
    app = NotifierApp(notifier_config(
        sandbox.origin, handle.address, tls=ServerTls(server_cert, server_key),
        broker_tls=ClientTls(pki.ca.read_bytes(), cert, key)))
    address = await app.start()
    try:
        await until_status(address, pki, health_pb2.HealthCheckResponse.SERVING)
    finally:
        await app.stop(0)
