"""Real processes and replicas: an event acknowledged right before kill -9 is streamed
after the restart; the ingress on one replica, the watcher on another."""

from __future__ import annotations

import asyncio
import os
import signal

import grpc
import pytest

from notifier.app import NotifierApp
from tests.integration.stack import free_port
from tests.live.helpers import Watcher, crm_subscription
from tests.plugins.broker_fixtures import TEST_KEY
from tests.plugins.notifier_fixtures import events_config, notifier_config
from tests.plugins.processes import ServiceProcess
from tests.plugins.zoho_callbacks import crm_body
from zoho.notifier.v1 import notifier_pb2_grpc


class _Handle:
    def __init__(self, address: str) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = notifier_pb2_grpc.NotifierServiceStub(self.channel)


def _env(sandbox, broker, database_url: str) -> dict[str, str]:
    return {
        "NOTIFIER_LISTEN": "127.0.0.1:0",
        "NOTIFIER_BROKER_TARGET": broker.address,
        "ZOHO_EXTRA_ORIGINS": sandbox.origin,
        "NOTIFIER_DATABASE_URL": database_url,
        "NOTIFIER_ENCRYPTION_KEY": TEST_KEY,
        "NOTIFIER_INGRESS_LISTEN": f"127.0.0.1:{free_port()}",
    }


@pytest.mark.slow
async def test_an_event_acknowledged_before_kill_9_is_streamed_after_restart(
    sandbox, broker, connect_subscriber, callbacks, notifier_database_url
) -> None:
    await connect_subscriber()
    process = await asyncio.to_thread(
        ServiceProcess, "notifier", _env(sandbox, broker, notifier_database_url))
    handle = _Handle(process.address)
    try:
        _, channel = await crm_subscription(handle, sandbox)
        answer = await callbacks.crm(channel["notify_url"], crm_body(channel, ["42"]))
        assert answer.status_code == 200
        os.kill(process.pid, signal.SIGKILL)
        await asyncio.to_thread(process.proc.wait, 10)
    finally:
        await handle.channel.close()
        process.kill()
    again = await asyncio.to_thread(
        ServiceProcess, "notifier", _env(sandbox, broker, notifier_database_url))
    handle = _Handle(again.address)
    try:
        watcher = Watcher(handle.stub, from_earliest=True)
        assert [e.record_id for e in await watcher.wait_for(1)] == ["42"]
        await watcher.stop()
    finally:
        await handle.channel.close()
        again.terminate()
    assert channel["token"] not in process.stderr + again.stderr


@pytest.mark.slow
async def test_the_ingress_on_one_replica_reaches_a_watcher_on_another(
    notifier, sandbox, broker, connect_subscriber, callbacks, notifier_database_url
) -> None:
    await connect_subscriber()
    other = NotifierApp(notifier_config(
        sandbox.origin, broker.address, notifier_database_url,
        events=events_config(notifier_database_url, poll_seconds=5.0)))
    address = await other.start(migrate=False)
    if other.live.listener is not None:
        await asyncio.wait_for(other.live.listener.listening.wait(), 10)
    handle = _Handle(address)
    try:
        _, channel = await crm_subscription(notifier, sandbox)
        watcher = Watcher(handle.stub, user_id="demo")
        await watcher.started()
        for i in range(3):
            assert (await callbacks.crm(channel["notify_url"], crm_body(channel, [str(i)]))
                    ).status_code == 200
        # Within the poll interval (5 s) only if the wake-up crossed replicas (NOTIFY);
        # on SQLite the poll is the mechanism, so allow it there.
        limit = 2.0 if other.live.listener is not None else 8.0
        events = await watcher.wait_for(3, limit=limit)
        assert [e.record_id for e in events] == ["0", "1", "2"]
        await watcher.stop()
    finally:
        await handle.channel.close()
        await other.stop(0)


@pytest.mark.slow
async def test_the_ingress_runs_alone_with_only_the_database(
    notifier, sandbox, connect_subscriber, callbacks, notifier_database_url
) -> None:
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    port = free_port()
    alone = await asyncio.to_thread(
        ServiceProcess, "notifier", {
            "NOTIFIER_DATABASE_URL": notifier_database_url,
            "NOTIFIER_INGRESS_LISTEN": f"127.0.0.1:{port}",
            "NOTIFIER_BROKER_TARGET": "127.0.0.1:1",  # no broker: it never calls one
        }, "ingress", first_line_prefix="ingress listening on ")
    try:
        assert alone.address == f"127.0.0.1:{port}"
        url = channel["notify_url"].replace(
            channel["notify_url"].split("/")[2], alone.address)
        watcher = Watcher(notifier.stub, user_id="demo")
        await watcher.started()
        assert (await callbacks.crm(url, crm_body(channel, ["77"]))).status_code == 200
        assert [e.record_id for e in await watcher.wait_for(1)] == ["77"]
        await watcher.stop()
        forged = crm_body(channel, ["78"], token="x" * 43)
        assert (await callbacks.crm(url, forged)).status_code == 401
    finally:
        alone.terminate()
