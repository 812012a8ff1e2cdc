"""Health follows the broker's reachability; no token ever reaches a log line."""

from __future__ import annotations

import asyncio
import logging
import socket

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from notifier.app import NotifierApp
from servicekit.services import NOTIFIER_SERVICE_NAME as SERVICE_NAME
from tests.notifier.helpers import CRM, DESK, collect, list_request
from tests.plugins.notifier_fixtures import notifier_config
from zoho.notifier.v1 import notifier_pb2 as pb

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def wait_for_health(address: str, wanted: int) -> None:
    """Watches the notifier's health until it reports `wanted` (guarded, not timed)."""
    async with grpc.aio.insecure_channel(address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME)
        )
        async with asyncio.timeout(15):
            async for reply in watch:
                if reply.status == wanted:
                    watch.cancel()
                    return


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
async def test_serving_with_a_reachable_broker(notifier) -> None:
    await wait_for_health(notifier.address, SERVING)


@pytest.mark.slow
async def test_not_serving_while_the_broker_is_down_and_serving_once_it_is_back(
    sandbox, make_broker
) -> None:
    port = free_port()
    app = NotifierApp(notifier_config(sandbox.origin, f"127.0.0.1:{port}"))
    await app.start()
    try:
        await wait_for_health(app.server.address, NOT_SERVING)
        # What an alert reads (grpc_health_serving) follows what the probe is told.
        assert serving_gauge() == 0
        broker = await make_broker(BROKER_LISTEN=f"127.0.0.1:{port}")
        await wait_for_health(app.server.address, SERVING)
        assert serving_gauge() == 1
        await broker.broker.stop(0)
        await wait_for_health(app.server.address, NOT_SERVING)
        assert serving_gauge() == 0
    finally:
        await app.stop(0)


def serving_gauge() -> float | None:
    return REGISTRY.get_sample_value("grpc_health_serving", {"service": SERVICE_NAME})


@pytest.mark.slow
async def test_no_token_reaches_a_log_line_or_an_error(sandbox, broker, notifier, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    await broker.connect()
    channel_secret = "verify-77100-do-not-log"
    invalidated = False

    async def invalidate_once(request: httpx.Request, _: int) -> None:
        nonlocal invalidated
        if not invalidated:
            invalidated = True
            await sandbox.invalidate_access_token(request.headers["Authorization"].split()[1])

    notifier.http.before = invalidate_once
    await collect(notifier.stub, list_request(page_size=50))
    await notifier.stub.EnableCrmChannels(
        pb.EnableCrmChannelsRequest(
            user_id="demo",
            channels=[
                pb.CrmChannelSpec(
                    channel_id="77100",
                    events=["Leads.create"],
                    notify_url="https://hooks.example/77100",
                    token=channel_secret,
                )
            ],
        )
    )
    await collect(notifier.stub, list_request(app_type=DESK))
    await sandbox.fault("crm.watch", "status_500", count=None)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await collect(notifier.stub, list_request(app_type=CRM))

    access_tokens = {c.token for c in await sandbox.calls() if c.token}
    channel_tokens = {c["token"] for c in await sandbox.crm_channels() if c["token"]}
    assert len(access_tokens) >= 2 and channel_secret in channel_tokens
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert any(r.name.startswith("notifier") for r in caplog.records)
    for secret in access_tokens | channel_tokens | {"1000.sandbox.demo-refresh"}:
        assert secret not in logged
        assert secret not in (failed.value.details() or "")
