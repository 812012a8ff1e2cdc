"""The ingress (the one port facing the internet) against cheap hostile requests: nesting
depth, malformed HTTP, and verified deliveries built to expand (docs/security.md, "The
ingress under attack"). Each answer is a deliberate 4xx, never a 500 or a traceback, and
a good delivery right after it is still stored."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from tests.live.helpers import Watcher, crm_subscription, desk_subscription
from tests.plugins.zoho_callbacks import crm_body, desk_event


def _tracebacks_or_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records
            if r.levelno >= logging.ERROR or r.exc_info]


def _nested(depth: int) -> dict:
    value: object = "x"
    for _ in range(depth):
        value = {"a": value}
    assert isinstance(value, dict)
    return value


async def _raw_http(address: str, request: bytes) -> bytes:
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()


async def test_deeply_nested_json_is_400_on_every_path_with_no_traceback(
    notifier, sandbox, connect_subscriber, callbacks, caplog
) -> None:
    caplog.set_level(logging.INFO)
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    _, desk_url = await desk_subscription(notifier, sandbox)
    deep = b"[" * 50_000 + b"]" * 50_000
    for url in (channel["notify_url"], desk_url):
        answer = await callbacks.raw(url, deep)
        assert answer.status_code == 400, answer.text
        assert "nested deeper" in answer.text
    # Unauthenticated, in the JWT's parts: a refused JWT, not a crash.
    head = "W" * 2000  # base64 of "[[[..."
    answer = await callbacks.desk(desk_url, [desk_event("Ticket_Add", "1")],
                                  jwt=f"{head}.{head}.sig")
    assert answer.status_code == 401
    assert _tracebacks_or_errors(caplog) == []
    good = await callbacks.crm(channel["notify_url"], crm_body(channel, ["1"]))
    assert good.status_code == 200


async def test_a_verified_delivery_nested_past_what_protobuf_reads_is_refused(
    notifier, sandbox, connect_subscriber, callbacks
) -> None:
    """A Struct nested 60 deep is 120 protobuf messages: past the parser's limit of 100, so
    a stored event like it would break every watcher it reaches, on every resume."""
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    watcher = Watcher(notifier.stub, user_id="demo")
    await watcher.started()
    poison = crm_body(channel, ["1"], affected_values=[{"record_id": "1", "values": _nested(60)}])
    answer = await callbacks.crm(channel["notify_url"], poison)
    assert answer.status_code == 400
    assert (await callbacks.crm(channel["notify_url"], crm_body(channel, ["2"]))).status_code == 200
    assert [e.record_id for e in await watcher.wait_for(1)] == ["2"]
    await watcher.stop()


@pytest.mark.parametrize("request_bytes", [
    # Content-Length and Transfer-Encoding both: request smuggling's first step.
    b"POST /callbacks/crm/sub_000000000000000000000000 HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    # A header flood: more headers than the parser takes.
    b"POST /callbacks/crm/sub_000000000000000000000000 HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-%d: y\r\n" % i for i in range(500)) + b"\r\n",
    # A header line longer than the parser takes.
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n",
], ids=["cl-and-te", "header-flood", "long-header"])
async def test_malformed_http_is_400_and_one_warning_at_most(
    notifier, request_bytes, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = await _raw_http(notifier.app.live.ingress_address, request_bytes)
    assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), answer[:100]
    await asyncio.sleep(0.1)
    assert _tracebacks_or_errors(caplog) == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) <= 1
    assert notifier.app.live.ingress.counts[("http", "malformed")] == 1


async def test_one_verified_crm_delivery_cannot_expand_into_gigabytes(
    notifier, sandbox, connect_subscriber, callbacks, caplog
) -> None:
    """The body of issue 22: 1,000 ids and 200,000 field names (787 KiB) gave 1,000 events
    each holding all 200,000 names (the loop blocked 33 s, RSS +4.8 GiB)."""
    caplog.set_level(logging.INFO)
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    fields = ["F"] * 200_000
    body = crm_body(channel, [str(10**15 + i) for i in range(1000)], operation="update",
                    affected_fields=fields)
    assert len(json.dumps(body)) < 1024 * 1024
    started = time.monotonic()
    answer = await callbacks.crm(channel["notify_url"], body)
    took = time.monotonic() - started
    assert answer.status_code == 413, answer.text
    assert "NOTIFIER_INGRESS_MAX_FIELDS_PER_EVENT" in answer.text
    assert took < 5.0
    assert notifier.app.live.ingress.counts[("crm", "too_large")] == 1
    assert any("too_large" in r.getMessage() or "refused" in r.getMessage()
               for r in caplog.records if r.levelno == logging.WARNING)
    # Names within the per-event bound, but 1,000 records each carrying them all: the
    # delivery's stored size is refused before anything is built.
    body["affected_fields"] = [f"Field_{'x' * 40}_{i}" for i in range(1000)]
    answer = await callbacks.crm(channel["notify_url"], body)
    assert answer.status_code == 413, answer.text
    assert "NOTIFIER_INGRESS_MAX_STORED_BYTES_PER_DELIVERY" in answer.text
    # One record named 1,000 times, each pointing at the same 300 KB of values.
    values = {"Description": "v" * 300_000}
    body = crm_body(channel, ["7"] * 1000, operation="update",
                    affected_values=[{"record_id": "7", "values": values}])
    answer = await callbacks.crm(channel["notify_url"], body)
    assert answer.status_code == 200, answer.text
    watcher = Watcher(notifier.stub, user_id="demo", from_earliest=True)
    assert [e.record_id for e in await watcher.wait_for(1)] == ["7"]
    await asyncio.sleep(0.2)
    assert len(watcher.events) == 1
    await watcher.stop()
    assert _tracebacks_or_errors(caplog) == []


async def test_a_desk_batch_past_the_bounds_is_413_naming_the_bound(
    notifier, sandbox, connect_subscriber, callbacks
) -> None:
    await connect_subscriber()
    _, url = await desk_subscription(notifier, sandbox)
    big_previous = {f"field{i}": i for i in range(3000)}
    answer = await callbacks.desk(url, [desk_event("Ticket_Update", "1", prev=big_previous)])
    assert answer.status_code == 413
    assert "NOTIFIER_INGRESS_MAX_FIELDS_PER_EVENT" in answer.text
    assert notifier.app.live.ingress.counts[("desk", "too_large")] == 1
