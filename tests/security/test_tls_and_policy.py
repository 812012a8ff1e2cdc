"""TLS on both servers, mutual TLS with a client CA, and the broker's per-caller policy.

Injected: callers with the notifier's, the operator's, an unnamed (stranger's) and a
forged (other CA) certificate, and with none. Asserted: who got through, the status and
ErrorInfo of who did not, and that denied calls changed nothing (rows, mints).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from broker.app import Broker
from broker.config import BrokerConfig
from notifier.app import NotifierApp
from sandbox.control.client import SandboxControl
from sandbox.demo.tenant import DEMO_REFRESH_TOKEN, DEMO_SCOPES
from servicekit.config import ConfigError, Env
from servicekit.tls import ClientTls, ServerTls
from tests.plugins.broker_fixtures import MakeBroker
from tests.plugins.notifier_fixtures import notifier_config
from tests.rpc_errors import seen
from tests.security.certs import Issued
from tests.security.conftest import Pki
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

GET = broker_pb2.GetTokenRequest(user_id="demo", app_type=common_pb2.APP_TYPE_CRM)


def tls_env(pki: Pki, *, mutual: bool, policy: str | None = None) -> dict[str, str]:
    env = {"BROKER_TLS_CERT": str(pki.server.cert), "BROKER_TLS_KEY": str(pki.server.key)}
    if mutual:
        env["BROKER_TLS_CLIENT_CA"] = str(pki.ca)
    if policy is not None:
        env["BROKER_CALLER_POLICY"] = policy
    return env


def client(pki: Pki, who: Issued | None, ca: bytes | None = None) -> grpc.ChannelCredentials:
    cert, key = who.pair() if who else (None, None)
    return grpc.ssl_channel_credentials(
        root_certificates=ca or pki.ca.read_bytes(), private_key=key, certificate_chain=cert
    )




@pytest.fixture
async def dial(pki: Pki) -> AsyncIterator[Callable[[str, Issued | None], grpc.aio.Channel]]:
    channels: list[grpc.aio.Channel] = []

    def open_channel(address: str, who: Issued | None) -> grpc.aio.Channel:
        channel = grpc.aio.secure_channel(address, client(pki, who))
        channels.append(channel)
        return channel

    yield open_channel
    for channel in channels:
        await channel.close()


def create_request(sandbox: SandboxControl, user_id: str = "demo"
                   ) -> broker_pb2.CreateConnectionRequest:
    return broker_pb2.CreateConnectionRequest(
        user_id=user_id, accounts_server=sandbox.origin, api_domain=sandbox.origin,
        refresh_token=DEMO_REFRESH_TOKEN, scopes=list(DEMO_SCOPES),
    )


async def test_tls_without_client_ca_encrypts_and_applies_no_policy(
    make_broker: MakeBroker, sandbox: SandboxControl, pki: Pki, dial
) -> None:
    handle = await make_broker(**tls_env(pki, mutual=False))
    stub = broker_pb2_grpc.TokenBrokerServiceStub(dial(handle.address, None))
    created = await stub.CreateConnection(create_request(sandbox), timeout=10)
    assert created.user_id == "demo"
    assert (await stub.GetToken(GET, timeout=10)).access_token
    # Plaintext against a TLS port never completes a call.
    async with grpc.aio.insecure_channel(handle.address) as plain:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await broker_pb2_grpc.TokenBrokerServiceStub(plain).GetToken(GET, timeout=3)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_policy_lets_the_notifier_get_tokens_and_nothing_else(
    make_broker: MakeBroker, sandbox: SandboxControl, pki: Pki, dial
) -> None:
    handle = await make_broker(**tls_env(pki, mutual=True))
    operator = broker_pb2_grpc.TokenBrokerServiceStub(dial(handle.address, pki.operator))
    notifier = broker_pb2_grpc.TokenBrokerServiceStub(dial(handle.address, pki.notifier))
    await operator.CreateConnection(create_request(sandbox), timeout=10)
    mints = await sandbox.mint_count(DEMO_REFRESH_TOKEN)

    token = await notifier.GetToken(GET, timeout=10)
    refreshed = await notifier.RefreshToken(broker_pb2.RefreshTokenRequest(
        user_id="demo", rejected_access_token=token.access_token), timeout=10)
    assert refreshed.access_token and refreshed.access_token != token.access_token

    denied = [
        notifier.CreateConnection(create_request(sandbox, "intruded"), timeout=10),
        notifier.ListConnections(broker_pb2.ListConnectionsRequest(), timeout=10),
        notifier.GetConnection(broker_pb2.GetConnectionRequest(user_id="demo"), timeout=10),
        notifier.DeleteConnection(broker_pb2.DeleteConnectionRequest(
            user_id="demo", revoke=True), timeout=10),
    ]
    for call in denied:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        error = seen(caught.value)
        assert error.code == grpc.StatusCode.PERMISSION_DENIED
        assert error.reason == "PERMISSION_DENIED"
        assert error.metadata["caller"] == "notifier"
    # Nothing the denied calls asked for happened: still one connection, no revoke,
    # no mint beyond the one RefreshToken.
    listed = await operator.ListConnections(broker_pb2.ListConnectionsRequest(), timeout=10)
    assert [c.user_id for c in listed.connections] == ["demo"]
    assert await sandbox.mint_count(DEMO_REFRESH_TOKEN) == mints + 1
    assert not await sandbox.calls("revoke")


async def test_the_operator_manages_connections(
    make_broker: MakeBroker, sandbox: SandboxControl, pki: Pki, dial
) -> None:
    handle = await make_broker(**tls_env(pki, mutual=True))
    operator = broker_pb2_grpc.TokenBrokerServiceStub(dial(handle.address, pki.operator))
    await operator.CreateConnection(create_request(sandbox), timeout=10)
    got = await operator.GetConnection(broker_pb2.GetConnectionRequest(user_id="demo"), timeout=10)
    assert got.status == broker_pb2.CONNECTION_STATUS_ACTIVE
    await operator.DeleteConnection(broker_pb2.DeleteConnectionRequest(user_id="demo"), timeout=10)
    listed = await operator.ListConnections(broker_pb2.ListConnectionsRequest(), timeout=10)
    assert not listed.connections


async def test_a_certificate_the_policy_does_not_name_is_denied_everything_but_health(
    make_broker: MakeBroker, sandbox: SandboxControl, pki: Pki, dial
) -> None:
    handle = await make_broker(**tls_env(pki, mutual=True))
    operator = broker_pb2_grpc.TokenBrokerServiceStub(dial(handle.address, pki.operator))
    await operator.CreateConnection(create_request(sandbox), timeout=10)
    channel = dial(handle.address, pki.stranger)
    stranger = broker_pb2_grpc.TokenBrokerServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stranger.GetToken(GET, timeout=10)
    assert seen(caught.value).code == grpc.StatusCode.PERMISSION_DENIED
    assert seen(caught.value).reason == "PERMISSION_DENIED"
    # Health is not TokenBrokerService: any certificate of the client CA may ask it.
    health = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="zoho.broker.v1.TokenBrokerService"), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("who", ["none", "forged"])
async def test_no_certificate_or_another_cas_never_reaches_a_method(
    make_broker: MakeBroker, sandbox: SandboxControl, pki: Pki, who: str
) -> None:
    handle = await make_broker(**tls_env(pki, mutual=True))
    credentials = client(pki, pki.forged_operator if who == "forged" else None)
    async with grpc.aio.secure_channel(handle.address, credentials) as channel:
        stub = broker_pb2_grpc.TokenBrokerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateConnection(create_request(sandbox), timeout=5)
    # The handshake fails: the call never existed on the server.
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert await handle.broker.store.count() == 0


async def test_identity_may_come_from_a_subject_alternative_name(
    make_broker: MakeBroker, sandbox: SandboxControl, pki: Pki, dial, tmp_path
) -> None:
    from tests.security.certs import CertificateAuthority

    # A CA of this test only, so the stranger-with-a-SAN is not in the session's PKI.
    ca = CertificateAuthority(tmp_path)
    server = ca.issue("server", server=True)
    ops = ca.issue("ops-box-17", dns_names=("operator",))
    handle = await make_broker(
        BROKER_TLS_CERT=str(server.cert), BROKER_TLS_KEY=str(server.key),
        BROKER_TLS_CLIENT_CA=str(ca.ca), BROKER_CALLER_POLICY="operator=ListConnections",
    )
    cert, key = ops.pair()
    credentials = grpc.ssl_channel_credentials(ca.ca.read_bytes(), key, cert)
    async with grpc.aio.secure_channel(handle.address, credentials) as channel:
        stub = broker_pb2_grpc.TokenBrokerServiceStub(channel)
        await stub.ListConnections(broker_pb2.ListConnectionsRequest(), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetToken(GET, timeout=10)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.slow
async def test_the_notifier_presents_its_certificate_and_serves_over_tls(
    make_broker: MakeBroker, sandbox: SandboxControl, pki: Pki, dial
) -> None:
    handle = await make_broker(**tls_env(pki, mutual=True))
    operator = broker_pb2_grpc.TokenBrokerServiceStub(dial(handle.address, pki.operator))
    await operator.CreateConnection(create_request(sandbox), timeout=10)
    server_cert, server_key = pki.server.pair()
    notifier_cert, notifier_key = pki.notifier.pair()
    config = notifier_config(
        sandbox.origin, handle.address,
        tls=ServerTls(server_cert, server_key, pki.ca.read_bytes()),
        broker_tls=ClientTls(pki.ca.read_bytes(), notifier_cert, notifier_key),
    )
    app = NotifierApp(config)
    address = await app.start()
    try:
        stub = notifier_pb2_grpc.NotifierServiceStub(dial(address, pki.operator))
        items = [n async for n in stub.ListNotifications(notifier_pb2.ListNotificationsRequest(
            user_id="demo", app_type=common_pb2.APP_TYPE_CRM), timeout=20)]
    finally:
        await app.stop(0)
    assert len(items) == 250
    tokens_sent = {c.token for c in await sandbox.calls("crm.watch")}
    assert len(tokens_sent) == 1 and None not in tokens_sent


async def test_a_notifier_without_its_certificate_gets_no_token(
    make_broker: MakeBroker, sandbox: SandboxControl, pki: Pki, dial
) -> None:
    handle = await make_broker(**tls_env(pki, mutual=True))
    operator = broker_pb2_grpc.TokenBrokerServiceStub(dial(handle.address, pki.operator))
    await operator.CreateConnection(create_request(sandbox), timeout=10)
    app = NotifierApp(notifier_config(
        sandbox.origin, handle.address, broker_tls=ClientTls(pki.ca.read_bytes())))
    address = await app.start()
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = notifier_pb2_grpc.NotifierServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in stub.ListNotifications(notifier_pb2.ListNotificationsRequest(
                        user_id="demo", app_type=common_pb2.APP_TYPE_CRM), timeout=10):
                    pass
    finally:
        await app.stop(0)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert not await sandbox.calls("crm.watch")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"BROKER_CALLER_POLICY": "notifier=GetToken"}, "BROKER_CALLER_POLICY"),
        ({"BROKER_TLS_CERT": "SERVER_CERT"}, "BROKER_TLS_KEY"),
        ({"BROKER_TLS_CLIENT_CA": "CA"}, "BROKER_TLS_CLIENT_CA"),
        ({"BROKER_TLS_CERT": "/nonexistent.pem", "BROKER_TLS_KEY": "SERVER_KEY"},
         "BROKER_TLS_CERT"),
    ],
)
def test_bad_tls_settings_stop_the_broker_naming_the_variable(
    broker_env: dict[str, str], pki: Pki, env: dict[str, str], variable: str
) -> None:
    paths = {"SERVER_CERT": str(pki.server.cert), "SERVER_KEY": str(pki.server.key),
             "CA": str(pki.ca)}
    resolved = {k: paths.get(v, v) for k, v in env.items()}
    with pytest.raises(ConfigError) as caught:
        BrokerConfig.from_env(Env({**broker_env, **resolved}))
    assert caught.value.variable == variable


@pytest.mark.parametrize(
    ("policy", "problem"),
    [("notifier=GetTokens", "unknown method"), ("notifier", "expected"),
     ("a=*;a=GetToken", "twice")],
)
def test_a_bad_policy_stops_the_broker(
    broker_env: dict[str, str], pki: Pki, policy: str, problem: str
) -> None:
    config = BrokerConfig.from_env(Env({**broker_env, **tls_env(pki, mutual=True, policy=policy)}))
    with pytest.raises(ConfigError) as caught:
        Broker(config)
    assert caught.value.variable == "BROKER_CALLER_POLICY"
    assert problem in str(caught.value)


async def test_the_health_probe_speaks_mutual_tls(
    make_broker: MakeBroker, pki: Pki
) -> None:
    import asyncio

    from servicekit.healthprobe import main as probe

    handle = await make_broker(**tls_env(pki, mutual=True))
    with_cert = ["--tls-ca", str(pki.ca), "--tls-cert", str(pki.stranger.cert),
                 "--tls-key", str(pki.stranger.key)]
    assert await asyncio.to_thread(probe, [handle.address, *with_cert]) == 0
    # Without a client certificate the handshake fails: not healthy, not a crash.
    assert await asyncio.to_thread(probe, [handle.address, "--tls-ca", str(pki.ca),
                                           "--timeout", "2"]) == 1
