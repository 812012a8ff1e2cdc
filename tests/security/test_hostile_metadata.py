"""A request id from outside is untrusted: raw CR, LF, NUL and non-ASCII bytes in
`x-request-id` (sent over a raw HTTP/2 connection: grpc's own clients refuse such
metadata) get a normal answer, never INTERNAL, and forge no line in the broker's or the
notifier's text log; a well-formed id still follows the call into the broker's log."""

from __future__ import annotations

import asyncio
import re

import grpc
import pytest

from sandbox.control.client import SandboxControl
from sandbox.demo.tenant import DEMO_REFRESH_TOKEN, DEMO_SCOPES
from tests.plugins.processes import ServiceProcess
from tests.plugins.raw_h2 import RawH2Client
from tests.rpc_errors import seen_trailer
from tests.waiting import until
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2

LIST_PATH = "/zoho.notifier.v1.NotifierService/ListNotificationPages"
REQUEST = notifier_pb2.ListNotificationPagesRequest(
    user_id="demo", app_type=common_pb2.APP_TYPE_CRM).SerializeToString()
NOBODY = notifier_pb2.ListNotificationPagesRequest(
    user_id="nobody", app_type=common_pb2.APP_TYPE_CRM).SerializeToString()
FAILED_PRECONDITION = 9
FORGED = b"2026-12-02 04:00:00,000 ERROR broker [forged] broker.servicer: forged line"
HOSTILE_IDS = [
    b"abc\n" + FORGED,
    b"abc\r\n" + FORGED,
    b"abc\rforged",
    b"nul\x00forged",
    b"\xc3\xa9t\xc3\xa9-forged",  # UTF-8 non-ASCII
    b"\xff\xfeforged",  # not even UTF-8
    b"esc\x1b[31mforged",
    b"forged" + b"x" * 200,  # too long
    b"spaced forged id",
]
SAFE_ID = "req-Ok.42:7_x"


@pytest.fixture
def processes(sandbox: SandboxControl, broker_env: dict[str, str]):
    """The broker and the notifier as `zoho-broker`/`zoho-notifier` run them, text logs."""
    broker = ServiceProcess("broker", {**broker_env, "LOG_FORMAT": "text"})
    notifier = ServiceProcess("notifier", {
        "NOTIFIER_LISTEN": "127.0.0.1:0", "NOTIFIER_BROKER_TARGET": broker.address,
        "ZOHO_EXTRA_ORIGINS": sandbox.origin, "LOG_FORMAT": "text", "LOG_LEVEL": "INFO"})
    try:
        yield broker, notifier
    finally:
        notifier.terminate()
        broker.terminate()


async def _connect(broker: ServiceProcess, sandbox: SandboxControl) -> None:
    async with grpc.aio.insecure_channel(broker.address) as channel:
        await broker_pb2_grpc.TokenBrokerServiceStub(channel).CreateConnection(
            broker_pb2.CreateConnectionRequest(
                user_id="demo", accounts_server=sandbox.origin, refresh_token=DEMO_REFRESH_TOKEN,
                api_domain=sandbox.origin, scopes=list(DEMO_SCOPES)), timeout=10)


@pytest.mark.slow
async def test_hostile_request_ids_get_normal_answers_and_forge_no_log_line(
    processes, sandbox: SandboxControl
) -> None:
    broker, notifier = processes
    await _connect(broker, sandbox)

    def calls(request: bytes) -> list:
        client = RawH2Client(notifier.address)
        try:
            return [client.call(LIST_PATH, request, [(b"x-request-id", rid)])
                    for rid in [*HOSTILE_IDS, SAFE_ID.encode()]]
        finally:
            client.close()

    listed = await asyncio.to_thread(calls, REQUEST)
    # An unknown user: the broker answers NOT_CONNECTED and logs the call.
    refused = await asyncio.to_thread(calls, NOBODY)
    for rid, reply in zip([*HOSTILE_IDS, SAFE_ID.encode()], listed, strict=True):
        assert reply.grpc_status == 0, (rid, reply.headers, reply.trailers)
        pages = [notifier_pb2.ListNotificationPagesResponse.FromString(m)
                 for m in reply.messages]
        assert sum(len(p.notifications) for p in pages) == 250, rid
    for rid, reply in zip([*HOSTILE_IDS, SAFE_ID.encode()], refused, strict=True):
        info = seen_trailer(reply.status_details)
        assert (reply.grpc_status, info.reason) == (FAILED_PRECONDITION, "NOT_CONNECTED"), rid
    # Positive signals before looking for what must not be there: the broker logged every
    # refused call, and the notifier a malformed request sent after all of them.
    def malformed() -> None:
        client = RawH2Client(notifier.address)
        try:
            client.call(LIST_PATH, b"\xff\xff\xff", [])
        finally:
            client.close()

    await asyncio.to_thread(malformed)
    await until(lambda: len(re.findall(r"\[[0-9a-f]{16}\] .*NOT_CONNECTED", broker.stderr))
                >= len(HOSTILE_IDS) and f"[{SAFE_ID}] " in broker.stderr
                and "refused: INVALID_ARGUMENT" in notifier.stderr)
    for process in (broker, notifier):
        log = process.stderr
        assert "forged" not in log, log[-3000:]
        assert "\x00" not in log and "\x1b" not in log and "\r" not in log
        record_start = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")
        for line in log.splitlines():
            assert record_start.match(line) or line.startswith("    | "), line
    # A well-formed id is kept and passed on: the broker logged the call under it.
    assert f"[{SAFE_ID}] " in broker.stderr
    # Each hostile id was replaced by a generated one, logged (not dropped) by the broker.
    assert len(re.findall(r"\[[0-9a-f]{16}\] .*NOT_CONNECTED", broker.stderr)) == len(HOSTILE_IDS)
