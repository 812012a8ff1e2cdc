"""A watcher killed while large events stream to it (its process gone: the connection
drops with no RST_STREAM, so the write in progress fails rather than being cancelled).

Injected: the watcher reaches the notifier through a TCP proxy whose connections are
aborted mid-stream. Asserted: the call is counted CANCELLED (not INTERNAL or UNKNOWN),
nothing is logged at ERROR and no traceback; the notifier serves the next watcher."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from servicekit import metrics
from tests.live.helpers import crm_subscription
from tests.plugins.zoho_callbacks import crm_body
from zoho.notifier.v1 import notifier_pb2

KILLS = 6
METHOD = "/zoho.notifier.v1.NotifierService/WatchNotifications"


# Reads two events, then stops reading (as a process that hangs, then is killed).
_READER = """
import sys, time, grpc
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc
stub = notifier_pb2_grpc.NotifierServiceStub(grpc.insecure_channel(sys.argv[1]))
call = stub.WatchNotifications(notifier_pb2.WatchNotificationsRequest(from_earliest=True))
next(call); next(call)
print("reading", flush=True)
time.sleep(600)
"""


def _handled(code: str) -> float:
    return metrics.RPCS.labels(METHOD, code, "")._value.get()  # no ErrorInfo: reason ""


@pytest.mark.slow
async def test_a_watcher_killed_mid_stream_is_cancelled_without_a_traceback(
    notifier, sandbox, connect_subscriber, callbacks, caplog
) -> None:
    caplog.set_level(logging.INFO)
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    big = {"Description": "x" * 200_000}
    for start in range(0, 60, 4):  # 800 KB a delivery, under the 1 MiB body cap
        ids = [str(n) for n in range(start, start + 4)]
        body = crm_body(channel, ids, affected_values=[
            {"record_id": record, "values": big} for record in ids])
        assert (await callbacks.crm(channel["notify_url"], body)).status_code == 200
    before = {code: _handled(code) for code in ("CANCELLED", "INTERNAL", "UNKNOWN")}
    for _ in range(KILLS):
        reader = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _READER, notifier.address,
            stdout=asyncio.subprocess.PIPE)
        assert reader.stdout is not None
        assert await reader.stdout.readline() == b"reading\n"
        reader.kill()
        await reader.wait()
    async with asyncio.timeout(10):
        while _handled("CANCELLED") - before["CANCELLED"] < KILLS:
            await asyncio.sleep(0.05)
    assert _handled("INTERNAL") == before["INTERNAL"]
    assert _handled("UNKNOWN") == before["UNKNOWN"]
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]
    # Still serving.
    call = notifier.stub.WatchNotifications(
        notifier_pb2.WatchNotificationsRequest(from_earliest=True))
    assert (await call.read()).record_id == "0"
    call.cancel()
