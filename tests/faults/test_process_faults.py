"""Processes killed or stopped while calls run: the notifier restarted mid-stream, SIGTERM
of both servers with calls in flight.

A broker SIGKILLed while its refresh hangs *before* Zoho minted is covered in
tests/broker/test_replicas.py (taken over within seconds, no extra mint); here it dies
*after* Zoho minted, which is where the one extra mint the issue allows comes from.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sandbox.control.client import SandboxControl
from tests.broker.test_replicas import connect, killed_mid_refresh
from tests.plugins.broker_fixtures import BrokerHandle
from tests.plugins.processes import ServiceProcess
from tests.waiting import until
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

pytestmark = pytest.mark.faults

CRM_ITEMS = 250
LIST = notifier_pb2.ListNotificationsRequest(
    user_id="demo", app_type=common_pb2.APP_TYPE_CRM, page_size=50)


# -- broker SIGKILLed after Zoho minted --------------------------------------------------


@pytest.mark.postgres
async def test_a_refresher_killed_after_zoho_minted_costs_one_extra_mint_at_most(
    sandbox: SandboxControl, broker_env: dict[str, str], empty_postgres: str
) -> None:
    env = {**broker_env, "BROKER_DATABASE_URL": empty_postgres, "BROKER_LEASE_SECONDS": "3"}
    refresh = await sandbox.add_refresh_token(lifetimes=[60, 3600])
    # Injected: Zoho mints, then the answer never comes; the refresher dies.
    taken = await killed_mid_refresh(
        sandbox, env, refresh, stuck=broker_pb2.GetTokenRequest(user_id="demo"), after_mint=True)
    reply, waited, connection = taken.reply, taken.waited, taken.connection
    assert waited < 15  # the 3 s lease lapsed: seconds, not minutes
    # The import, the mint the dead process never saw, the takeover: one extra at most.
    assert await sandbox.mint_count(refresh) == 3
    assert (await sandbox.access_token_status(reply.access_token))["valid"]
    # The refresh token survived: still the stored grant, still active, still working.
    assert connection.status == broker_pb2.CONNECTION_STATUS_ACTIVE
    assert not await sandbox.calls("revoke")


# -- the notifier restarted while streams run --------------------------------------------


def notifier_env(sandbox: SandboxControl, broker: BrokerHandle) -> dict[str, str]:
    return {
        "NOTIFIER_LISTEN": "127.0.0.1:0",
        "NOTIFIER_BROKER_TARGET": broker.address,
        "ZOHO_EXTRA_ORIGINS": sandbox.origin,
        "NOTIFIER_HEALTH_INTERVAL_SECONDS": "0.1",
        "NOTIFIER_INGRESS_LISTEN": "127.0.0.1:0",
        "NOTIFIER_DATABASE_URL": f"sqlite:///{tempfile.mkdtemp(prefix='notifier-')}/n.db",
    }


async def stream_all(address: str, received: list[int], index: int) -> str:
    """Streams the list; returns the final status code's name."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = notifier_pb2_grpc.NotifierServiceStub(channel)
        try:
            async for _ in stub.ListNotifications(LIST, timeout=30):
                received[index] += 1
        except grpc.aio.AioRpcError as err:
            return err.code().name
    return "OK"


async def test_a_notifier_killed_mid_stream_never_passes_off_a_short_list_as_complete(
    sandbox: SandboxControl, broker: BrokerHandle
) -> None:
    await broker.connect()
    # Injected: slow CRM pages (5 pages of 50, 300 ms each), then SIGKILL mid-stream.
    await sandbox.latency("crm.watch", 300, count=None)
    process = await asyncio.to_thread(ServiceProcess, "notifier", notifier_env(sandbox, broker))
    received = [0] * 6
    streams = [asyncio.create_task(stream_all(process.address, received, i)) for i in range(6)]

    async def all_started() -> bool:
        return all(received)

    await until(all_started)
    await asyncio.to_thread(process.kill)
    outcomes = await asyncio.gather(*streams)

    cut = [n for n, code in zip(received, outcomes, strict=True) if code != "OK"]
    assert cut, "the kill came too late to cut any stream"
    assert set(outcomes) <= {"OK", "UNAVAILABLE"}, outcomes
    for count, code in zip(received, outcomes, strict=True):
        assert code != "OK" or count == CRM_ITEMS, (count, code)

    # Restarted, the same calls stream every item.
    again = await asyncio.to_thread(ServiceProcess, "notifier", notifier_env(sandbox, broker))
    try:
        received = [0] * 3
        outcomes = await asyncio.gather(*(stream_all(again.address, received, i)
                                          for i in range(3)))
    finally:
        assert await asyncio.to_thread(again.terminate) == 0
    assert outcomes == ["OK"] * 3 and received == [CRM_ITEMS] * 3


# -- SIGTERM -----------------------------------------------------------------------------


async def watch_health(address: str, service: str, seen: list[str]) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        call = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=service), timeout=60)
        try:
            async for reply in call:
                seen.append(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
        except grpc.aio.AioRpcError as err:
            return err.code().name
    return "OK"


async def test_sigterm_on_the_notifier_drains_streams_and_exits_zero(
    sandbox: SandboxControl, broker: BrokerHandle
) -> None:
    await broker.connect()
    await sandbox.latency("crm.watch", 300, count=None)
    process = await asyncio.to_thread(ServiceProcess, "notifier", notifier_env(sandbox, broker))
    health: list[str] = []
    watcher = asyncio.create_task(
        watch_health(process.address, "zoho.notifier.v1.NotifierService", health))

    async def serving() -> bool:
        return health[-1:] == ["SERVING"]

    await until(serving)
    received = [0] * 4
    streams = [asyncio.create_task(stream_all(process.address, received, i)) for i in range(4)]

    async def all_started() -> bool:
        return all(received)

    await until(all_started)
    # Injected: SIGTERM with 4 streams in flight (about 1.5 s of pages left each).
    code = await asyncio.to_thread(process.terminate)
    outcomes = await asyncio.gather(*streams)
    watch_end = await watcher
    assert code == 0
    assert watch_end == "UNAVAILABLE"  # the endless health Watch, cut at the grace
    assert "NOT_SERVING" in health
    assert outcomes == ["OK"] * 4 and received == [CRM_ITEMS] * 4


async def test_sigterm_on_the_broker_finishes_calls_in_flight_and_exits_zero(
    sandbox: SandboxControl, broker_env: dict[str, str]
) -> None:
    process = await asyncio.to_thread(ServiceProcess, "broker",
                                      {**broker_env, "BROKER_GRACE_SECONDS": "3"}, "serve")
    try:
        async with grpc.aio.insecure_channel(process.address) as channel:
            stub = broker_pb2_grpc.TokenBrokerServiceStub(channel)
            refresh = await sandbox.add_refresh_token(lifetimes=[60, 3600])
            await connect(stub, sandbox, refresh)
            health: list[str] = []
            watcher = asyncio.create_task(
                watch_health(process.address, "zoho.broker.v1.TokenBrokerService", health))
            # Injected: a slow token endpoint, so the refresh is in flight at SIGTERM.
            await sandbox.latency("token", 1500, count=None)
            calls = [asyncio.ensure_future(stub.GetToken(broker_pb2.GetTokenRequest(
                user_id="demo"), timeout=20)) for _ in range(5)]

            async def refreshing() -> bool:
                return len(await sandbox.calls("token")) >= 2

            await until(refreshing)
            code = await asyncio.to_thread(process.terminate)
            replies = await asyncio.gather(*calls, return_exceptions=True)
            watch_end = await watcher
    finally:
        process.kill()
    assert code == 0
    assert "NOT_SERVING" in health
    # A stream still open when the grace runs out ends UNAVAILABLE (retry elsewhere).
    assert watch_end == "UNAVAILABLE"
    errors = Counter(type(r).__name__ for r in replies if isinstance(r, BaseException))
    assert not errors, errors
    assert len({r.access_token for r in replies}) == 1  # type: ignore[union-attr]
    assert await sandbox.mint_count(refresh) == 2
