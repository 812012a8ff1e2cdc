"""Several broker processes on one PostgreSQL database: still one mint per expiry."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from sandbox.control.client import SandboxControl
from sandbox.demo.tenant import DEMO_SCOPES
from tests.plugins.processes import ServiceProcess
from tests.waiting import until
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2

pytestmark = pytest.mark.postgres


@pytest.fixture
def replica_env(broker_env: dict[str, str], empty_postgres: str) -> dict[str, str]:
    return {**broker_env, "BROKER_DATABASE_URL": empty_postgres, "BROKER_LEASE_SECONDS": "3"}


@contextlib.contextmanager
def replicas(env: dict[str, str], count: int) -> Iterator[list[ServiceProcess]]:
    started = [ServiceProcess("broker", env, "serve", "--no-migrate") for _ in range(count)]
    try:
        yield started
    finally:
        for process in started:
            process.terminate()


@contextlib.asynccontextmanager
async def stubs(processes: list[ServiceProcess]
                ) -> AsyncIterator[list[broker_pb2_grpc.TokenBrokerServiceStub]]:
    channels = [grpc.aio.insecure_channel(p.address) for p in processes]
    try:
        yield [broker_pb2_grpc.TokenBrokerServiceStub(c) for c in channels]
    finally:
        for channel in channels:
            await channel.close()


async def connect(stub: broker_pb2_grpc.TokenBrokerServiceStub, sandbox: SandboxControl,
                  refresh: str) -> None:
    await stub.CreateConnection(broker_pb2.CreateConnectionRequest(
        user_id="demo", accounts_server=sandbox.origin, api_domain=sandbox.origin,
        refresh_token=refresh, scopes=list(DEMO_SCOPES),
    ), timeout=10)


GET = broker_pb2.GetTokenRequest(user_id="demo", app_type=common_pb2.APP_TYPE_CRM)


@dataclass
class TakenOver:
    reply: broker_pb2.GetTokenResponse
    waited: float  # how long the second replica's GetToken took
    connection: broker_pb2.Connection


async def killed_mid_refresh(
    sandbox: SandboxControl, env: dict[str, str], refresh: str, *, stuck: Any,
    after_mint: bool,
) -> TakenOver:
    """The replica takeover: two brokers, the first's refresh hangs at Zoho (before it
    minted, or `after_mint`) and its process is SIGKILLed holding the lease; the second
    is then asked for a token that needs a refresh."""
    with replicas(env, 2) as (first, second):
        async with stubs([first, second]) as (a, b):
            await connect(a, sandbox, refresh)
            await sandbox.fault("token", "hang", count=1,
                                **({"when": "after"} if after_mint else {}))
            call = asyncio.ensure_future(a.GetToken(stuck, timeout=30))

            async def hung() -> bool:
                if after_mint:
                    return await sandbox.mint_count(refresh) == 2
                return len(await sandbox.calls("token")) > 1

            await until(hung)
            first.kill()
            with contextlib.suppress(grpc.aio.AioRpcError):
                await call
            loop = asyncio.get_running_loop()
            started = loop.time()
            reply = await b.GetToken(
                broker_pb2.GetTokenRequest(user_id="demo", min_ttl_seconds=600), timeout=30
            )
            waited = loop.time() - started
            connection = await b.GetConnection(
                broker_pb2.GetConnectionRequest(user_id="demo"), timeout=10)
    return TakenOver(reply, waited, connection)


@pytest.mark.slow
async def test_fifty_callers_over_two_processes_cause_one_mint(
    sandbox: SandboxControl, replica_env: dict[str, str]
) -> None:
    refresh = await sandbox.add_refresh_token(lifetimes=[60, 3600])
    with replicas(replica_env, 2) as processes:
        async with stubs(processes) as (a, b):
            await connect(a, sandbox, refresh)
            replies = await asyncio.gather(
                *((a if i % 2 else b).GetToken(GET, timeout=20) for i in range(50))
            )
    assert len({r.access_token for r in replies}) == 1
    assert await sandbox.mint_count(refresh) == 2  # the import, then one refresh


@pytest.mark.slow
async def test_a_killed_refresher_is_taken_over_when_its_lease_lapses(
    sandbox: SandboxControl, replica_env: dict[str, str]
) -> None:
    refresh = await sandbox.add_refresh_token(lifetimes=[60, 3600])
    # The first refresh hangs inside Zoho; its process dies holding the lease.
    taken = await killed_mid_refresh(sandbox, replica_env, refresh, stuck=GET, after_mint=False)
    reply, waited = taken.reply, taken.waited
    assert reply.access_token
    assert waited < 10  # the 3 s lease lapsed; not minutes
    assert await sandbox.mint_count(refresh) == 2  # the hung call minted nothing
