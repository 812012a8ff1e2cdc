"""The running stack, end to end: two broker replicas on one PostgreSQL database, the
notifier over both, the sandbox as Zoho. Every address comes from the `stack` fixture, so
these run unchanged inside compose and against the local launcher."""

from __future__ import annotations

import subprocess
import uuid

import grpc
import pytest

from sandbox.control.client import SandboxControl
from sandbox.demo.tenant import DEFAULT_CRM_ITEMS, DEFAULT_DESK_WEBHOOKS, DEMO_REFRESH_TOKEN
from servicekit.errors import NOT_CONNECTED_MESSAGE
from tests.integration.conftest import project_command
from tests.integration.stack import Stack
from tests.rpc_errors import seen
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc


def zoho_health(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [project_command("zoho-health"), *args], capture_output=True, text=True, timeout=20,
        check=False,
    )


def test_every_service_answers_its_health_check(stack: Stack) -> None:
    checks = [
        *[(target, "zoho.broker.v1.TokenBrokerService") for target in stack.broker_targets],
        (stack.notifier_target, "zoho.notifier.v1.NotifierService"),
    ]
    for address, service in checks:
        probe = zoho_health(address, service)
        assert probe.returncode == 0, (address, probe.stderr)
        assert probe.stdout.strip().endswith("SERVING")
    sandbox = zoho_health("--http", f"{stack.sandbox_origin}/_sandbox/health")
    assert sandbox.returncode == 0, sandbox.stderr
    # The probe can fail: nothing listens there, and a service name nobody serves.
    assert zoho_health("127.0.0.1:1", "--timeout", "1").returncode == 1
    unknown = zoho_health(stack.broker_targets[0], "zoho.nothing.v1.Nope")
    assert unknown.returncode == 1
    assert "NOT_FOUND" in unknown.stderr
    assert zoho_health("--http", f"{stack.sandbox_origin}/_sandbox/nothing").returncode == 1


async def test_a_connection_made_on_one_replica_serves_the_same_token_on_the_other(
    demo_connection: broker_pb2.Connection,
    brokers: list[broker_pb2_grpc.TokenBrokerServiceStub],
    control: SandboxControl,
    stack: Stack,
) -> None:
    assert len(brokers) == 2
    broker_a, broker_b = brokers
    assert demo_connection.status == broker_pb2.CONNECTION_STATUS_ACTIVE
    assert demo_connection.api_domain == stack.sandbox_origin
    request = broker_pb2.GetTokenRequest(user_id="demo", app_type=common_pb2.APP_TYPE_CRM)
    from_b = await broker_b.GetToken(request, timeout=10)
    from_a = await broker_a.GetToken(request, timeout=10)
    assert from_b.access_token == from_a.access_token
    assert from_b.api_domain == stack.sandbox_origin
    assert (await control.access_token_status(from_b.access_token))["valid"] is True
    # The import minted once; neither replica asked Zoho again.
    assert await control.mint_count(DEMO_REFRESH_TOKEN) == 1
    shown = await broker_b.GetConnection(
        broker_pb2.GetConnectionRequest(user_id="demo"), timeout=10
    )
    assert shown.status == broker_pb2.CONNECTION_STATUS_ACTIVE


async def _listed(
    notifier: notifier_pb2_grpc.NotifierServiceStub, app: common_pb2.AppType.ValueType
) -> list[notifier_pb2.Notification]:
    stream = notifier.ListNotifications(
        notifier_pb2.ListNotificationsRequest(user_id="demo", app_type=app), timeout=30
    )
    return [item async for item in stream]


async def test_the_notifier_streams_every_crm_channel_and_desk_webhook(
    demo_connection: broker_pb2.Connection,
    notifier: notifier_pb2_grpc.NotifierServiceStub,
) -> None:
    crm = await _listed(notifier, common_pb2.APP_TYPE_CRM)
    assert len(crm) == DEFAULT_CRM_ITEMS == 250
    assert all(item.WhichOneof("item") == "crm" for item in crm)
    assert len({(item.crm.channel_id, item.crm.resource_name) for item in crm}) == 250
    desk = await _listed(notifier, common_pb2.APP_TYPE_DESK)
    assert len(desk) == DEFAULT_DESK_WEBHOOKS == 5
    assert all(item.WhichOneof("item") == "desk" and item.desk.id for item in desk)


async def test_an_unconnected_user_gets_not_connected_through_the_notifier(
    notifier: notifier_pb2_grpc.NotifierServiceStub,
) -> None:
    user = f"nobody-{uuid.uuid4().hex[:8]}"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _drain(notifier, user)
    error = seen(caught.value)
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "NOT_CONNECTED"
    assert error.message == NOT_CONNECTED_MESSAGE
    assert error.metadata["user_id"] == user


async def _drain(notifier: notifier_pb2_grpc.NotifierServiceStub, user: str) -> int:
    stream = notifier.ListNotifications(
        notifier_pb2.ListNotificationsRequest(user_id=user, app_type=common_pb2.APP_TYPE_CRM),
        timeout=10,
    )
    return len([item async for item in stream])
