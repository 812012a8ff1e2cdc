"""grpc_server_handled_total counts a stream under the code it really ended with, read
from the notifier's /metrics endpoint: a stream its caller cancelled is CANCELLED, one
whose deadline passed DEADLINE_EXCEEDED, one ended for a stalled reader
RESOURCE_EXHAUSTED; none of them OK."""

from __future__ import annotations

import asyncio
import socket

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandbox.control.client import SandboxControl
from tests.notifier.helpers import list_request
from tests.plugins.broker_fixtures import BrokerHandle
from tests.plugins.processes import ServiceProcess
from tests.plugins.raw_h2 import RawH2Client
from zoho.notifier.v1 import notifier_pb2_grpc

LIST = "/zoho.notifier.v1.NotifierService/ListNotifications"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def notifier_process(sandbox: SandboxControl, broker: BrokerHandle):
    port = free_port()
    process = ServiceProcess("notifier", {
        "NOTIFIER_LISTEN": "127.0.0.1:0", "NOTIFIER_BROKER_TARGET": broker.address,
        "ZOHO_EXTRA_ORIGINS": sandbox.origin, "NOTIFIER_METRICS_PORT": str(port),
        "NOTIFIER_STREAM_WRITE_TIMEOUT_SECONDS": "0.5"})
    process.metrics_url = f"http://127.0.0.1:{port}/metrics"  # type: ignore[attr-defined]
    try:
        yield process
    finally:
        process.terminate()


async def handled(url: str) -> dict[str, float]:
    async with httpx.AsyncClient() as client:
        text = (await client.get(url, timeout=5)).text
    return {
        sample.labels["code"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "grpc_server_handled_total" and sample.labels["method"] == LIST
    }


async def until_counted(url: str, code: str, count: int) -> dict[str, float]:
    async with asyncio.timeout(15):
        while (seen := await handled(url)).get(code, 0) < count:
            await asyncio.sleep(0.05)
    return seen


@pytest.mark.slow
async def test_abandoned_streams_are_counted_with_their_real_code(
    notifier_process: ServiceProcess, sandbox: SandboxControl, broker: BrokerHandle
) -> None:
    await broker.connect()
    url = notifier_process.metrics_url  # type: ignore[attr-defined]
    async with grpc.aio.insecure_channel(notifier_process.address) as channel:
        stub = notifier_pb2_grpc.NotifierServiceStub(channel)
        assert len([n async for n in stub.ListNotifications(list_request(), timeout=10)]) == 250
        await until_counted(url, "OK", 1)
        await sandbox.latency("crm.watch", 1000)
        # Cancelled by its caller while the notifier waits for Zoho.
        call = stub.ListNotifications(list_request(), timeout=10)
        await asyncio.sleep(0.3)
        call.cancel()
        await until_counted(url, "CANCELLED", 1)
        # Its deadline passes while the notifier waits for Zoho.
        with pytest.raises(grpc.aio.AioRpcError) as late:
            async for _ in stub.ListNotifications(list_request(), timeout=0.3):
                pass
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        await until_counted(url, "DEADLINE_EXCEEDED", 1)
    await sandbox.clear_faults()
    # Ended for a reader that never drains its window (a raw HTTP/2 client).
    stalled = RawH2Client(notifier_process.address, window=16, drain=False)
    try:
        stalled.start(LIST, list_request().SerializeToString())
        pumping = asyncio.create_task(asyncio.to_thread(stalled.pump, 3.0))
        seen = await until_counted(url, "RESOURCE_EXHAUSTED", 1)
        await pumping
    finally:
        stalled.close()
    assert seen == {"OK": 1, "CANCELLED": 1, "DEADLINE_EXCEEDED": 1, "RESOURCE_EXHAUSTED": 1}
