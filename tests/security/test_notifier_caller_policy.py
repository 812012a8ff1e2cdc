"""The notifier's caller policy (NOTIFIER_CALLER_POLICY), under mutual TLS with real
certificates: who may call which RPC, unary and streaming alike, and who may read every
user's events at once (WatchNotifications with an empty user_id: the AllUsers grant).

Injected: callers with the operator's, the notifier's and an unnamed (stranger's)
certificate, under the default policy and an explicit one. Asserted: who got through,
PERMISSION_DENIED with an ErrorInfo naming the method (or the grant) for who did not,
and that settings that cannot work stop the notifier naming the variable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from notifier import authz
from notifier.app import NotifierApp
from notifier.config import NotifierConfig
from servicekit import services
from servicekit.config import ConfigError
from servicekit.tls import ServerTls
from tests.plugins.notifier_fixtures import notifier_config
from tests.rpc_errors import error_info
from tests.security.certs import Issued
from tests.security.conftest import Pki
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

Stubs = Callable[[Issued], notifier_pb2_grpc.NotifierServiceStub]


def _credentials(pki: Pki, who: Issued) -> grpc.ChannelCredentials:
    cert, key = who.pair()
    return grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(), private_key=key, certificate_chain=cert)


@pytest.fixture
async def mutual_notifier(sandbox, broker, pki: Pki) -> AsyncIterator[Callable[..., Any]]:
    """start(policy) -> a function giving a stub that presents a given certificate."""
    apps: list[NotifierApp] = []
    channels: list[grpc.aio.Channel] = []

    async def start(policy: str = "") -> Stubs:
        server_cert, server_key = pki.server.pair()
        app = NotifierApp(notifier_config(
            sandbox.origin, broker.address, caller_policy=policy,
            tls=ServerTls(server_cert, server_key, pki.ca.read_bytes())))
        address = await app.start()
        apps.append(app)

        def stub(who: Issued) -> notifier_pb2_grpc.NotifierServiceStub:
            channel = grpc.aio.secure_channel(address, _credentials(pki, who))
            channels.append(channel)
            return notifier_pb2_grpc.NotifierServiceStub(channel)

        return stub

    yield start
    for channel in channels:
        await channel.close()
    for app in apps:
        await app.stop(0)


async def _open_or_refused(call: Any) -> str:
    """OK when the stream stays open (waiting for events), else the refusal's reason."""
    ended = asyncio.ensure_future(call.code())
    try:
        await asyncio.wait_for(asyncio.shield(ended), 1.0)
    except TimeoutError:
        return "OK"
    finally:
        call.cancel()
        await asyncio.gather(ended, return_exceptions=True)
    answer = await _refusal(call.read())
    assert answer != "OK", "the stream ended without an error"
    return answer


async def _refusal(call: Any) -> str:
    try:
        await call
    except grpc.aio.AioRpcError as refused:
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED, refused.details()
        info = error_info(refused)
        return f"{info.reason}:{info.metadata.get('grant') or info.metadata['method']}"
    return "OK"


async def _watch(stub: notifier_pb2_grpc.NotifierServiceStub, user_id: str) -> str:
    return await _open_or_refused(stub.WatchNotifications(
        notifier_pb2.WatchNotificationsRequest(user_id=user_id), timeout=10))


async def _pull_once(stub: notifier_pb2_grpc.NotifierServiceStub, consumer_id: str) -> str:
    call = stub.Pull(timeout=10)
    await call.write(notifier_pb2.PullRequest(consumer_id=consumer_id, max_outstanding=1))
    return await _open_or_refused(call)


async def _list(stub: notifier_pb2_grpc.NotifierServiceStub) -> str:
    try:
        await stub.ListSubscriptions(notifier_pb2.ListSubscriptionsRequest(user_id="demo"),
                                     timeout=10)
    except grpc.aio.AioRpcError as refused:
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED, refused.details()
        info = error_info(refused)
        assert info.metadata["method"] == "ListSubscriptions"
        return info.reason
    return "OK"


async def test_by_default_any_certificate_serves_one_user_and_only_named_ones_all(
    mutual_notifier, pki: Pki
) -> None:
    stub = await mutual_notifier()
    assert await _list(stub(pki.stranger)) == "OK"
    assert await _watch(stub(pki.stranger), "demo") == "OK"
    assert await _watch(stub(pki.stranger), "") == "PERMISSION_DENIED:AllUsers"
    assert await _watch(stub(pki.notifier), "") == "PERMISSION_DENIED:AllUsers"
    assert await _watch(stub(pki.operator), "") == "OK"


async def test_an_explicit_policy_is_applied_to_unary_and_streaming_rpcs(
    mutual_notifier, pki: Pki
) -> None:
    stub = await mutual_notifier("operator=*;notifier=ListSubscriptions")
    assert await _list(stub(pki.operator)) == "OK"
    assert await _list(stub(pki.notifier)) == "OK"
    assert await _list(stub(pki.stranger)) == "PERMISSION_DENIED"
    assert await _watch(stub(pki.notifier), "demo") == "PERMISSION_DENIED:WatchNotifications"
    assert await _watch(stub(pki.operator), "demo") == "OK"
    # `*` is every RPC, not every user's events: that grant is always named.
    assert await _watch(stub(pki.operator), "") == "PERMISSION_DENIED:AllUsers"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub(pki.notifier).GetSubscription(notifier_pb2.GetSubscriptionRequest(
            user_id="demo", subscription_id="sub_" + "0" * 24), timeout=10)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(caught.value).metadata["caller"] == "notifier"


async def test_a_consumer_over_every_user_needs_the_all_users_grant(
    mutual_notifier, pki: Pki
) -> None:
    stub = await mutual_notifier()
    every_user = notifier_pb2.CreateConsumerRequest(consumer_id="everyone")
    assert await _refusal(stub(pki.stranger).CreateConsumer(every_user, timeout=10)) == (
        "PERMISSION_DENIED:AllUsers")
    assert await _refusal(stub(pki.operator).CreateConsumer(every_user, timeout=10)) == "OK"
    one_user = notifier_pb2.CreateConsumerRequest(consumer_id="demo-only", user_id="demo")
    assert await _refusal(stub(pki.stranger).CreateConsumer(one_user, timeout=10)) == "OK"
    # Reading an every-user consumer is gated as creating one is; a one-user one is not.
    assert await _pull_once(stub(pki.stranger), "everyone") == "PERMISSION_DENIED:AllUsers"
    assert await _pull_once(stub(pki.operator), "everyone") == "OK"
    assert await _pull_once(stub(pki.stranger), "demo-only") == "OK"
    seek = notifier_pb2.SeekConsumerRequest(consumer_id="everyone", from_earliest=True)
    assert await _refusal(stub(pki.stranger).SeekConsumer(seek, timeout=10)) == (
        "PERMISSION_DENIED:AllUsers")
    # Nor may it be deleted from under the callers that may read it.
    delete = notifier_pb2.DeleteConsumerRequest(consumer_id="everyone")
    assert await _refusal(stub(pki.stranger).DeleteConsumer(delete, timeout=10)) == (
        "PERMISSION_DENIED:AllUsers")
    assert await _pull_once(stub(pki.operator), "everyone") == "OK"
    assert await _refusal(stub(pki.stranger).DeleteConsumer(
        notifier_pb2.DeleteConsumerRequest(consumer_id="demo-only"), timeout=10)) == "OK"
    assert await _refusal(stub(pki.operator).DeleteConsumer(delete, timeout=10)) == "OK"


@pytest.mark.parametrize(
    ("env", "why"),
    [
        ({"NOTIFIER_CALLER_POLICY": "operator=*"}, "needs NOTIFIER_TLS_CLIENT_CA"),
    ],
)
def test_a_policy_without_client_certificates_stops_the_notifier(env, why) -> None:
    with pytest.raises(ConfigError) as caught:
        NotifierConfig.from_env(env)
    assert caught.value.variable == "NOTIFIER_CALLER_POLICY" and why in str(caught.value)


@pytest.mark.parametrize(
    "spec", ["operator=Nope", "operator", "a=*;a=*", "operator=*;=AllUsers", ";"])
def test_a_malformed_policy_names_the_variable(spec: str) -> None:
    with pytest.raises(ConfigError) as caught:
        authz.parse_policy(spec, services.NOTIFIER.methods_by_name)
    assert caught.value.variable == "NOTIFIER_CALLER_POLICY"


def test_the_default_policy_parses_and_grants_what_it_says() -> None:
    policy = authz.parse_policy("", services.NOTIFIER.methods_by_name)
    assert policy.allowed(["anyone"], "CreateSubscription")
    assert not policy.allowed(["anyone"], authz.ALL_USERS)
    assert policy.allowed(["sync"], authz.ALL_USERS)
    assert policy.allowed(["operator"], authz.ALL_USERS)
