"""Slow and idle transports against the ingress (notifier/ingress/connections.py): idle
sockets, a header trickled a byte at a time, kept-alive connections left idle, more
connections than the caps, and all of it under a small file limit. Real callbacks keep
getting 200 throughout."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import resource
import shutil
import time

import pytest

from tests.live.helpers import crm_subscription
from tests.plugins.processes import ServiceProcess
from tests.plugins.zoho_callbacks import crm_body


class Raw:
    """One raw TCP connection to the ingress, from a chosen loopback address."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, address: str, source: str = "127.0.0.1") -> Raw:
        host, port = address.split(":")
        return cls(*await asyncio.open_connection(host, int(port), local_addr=(source, 0)))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def closed_within(self, seconds: float) -> bool:
        """Whether the server closes the connection within `seconds` (what it sent before
        closing is read and dropped)."""
        try:
            async with asyncio.timeout(seconds):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            pass
        return True

    def close(self) -> None:
        self.writer.close()


def _limit(notifier, **changes: object) -> None:
    guard = notifier.app.live.ingress.guard
    guard.limits = dataclasses.replace(guard.limits, **changes)
    guard.cap = min(guard.limits.max_connections, guard.cap)


def _post(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.mark.slow
async def test_idle_slow_header_and_kept_alive_idle_connections_are_closed(
    notifier, sandbox, connect_subscriber
) -> None:
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    _limit(notifier, header_timeout_seconds=0.5, idle_timeout_seconds=1.0)
    address = notifier.app.live.ingress_address
    path = "/" + channel["notify_url"].split("/", 3)[3]

    idle = await Raw.open(address)
    trickle = await Raw.open(address)
    began = time.monotonic()
    for byte in b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: yes":
        try:
            await trickle.send(bytes([byte]))
        except ConnectionError:
            break  # closed under it
        await asyncio.sleep(0.1)
    assert await idle.closed_within(1.0)
    assert await trickle.closed_within(1.0)
    assert time.monotonic() - began < 2.5  # not the 3.7 s the whole trickle takes

    # A request whose head came in time, then a slow body, is not cut by the header
    # deadline (the body has its own, NOTIFIER_INGRESS_READ_TIMEOUT_SECONDS).
    kept = await Raw.open(address)
    request = _post(path, json.dumps(crm_body(channel, ["1"])).encode())
    head, body = request.split(b"\r\n\r\n", 1)
    await kept.send(head + b"\r\n\r\n")
    for third in (body[:10], body[10:20], body[20:]):
        await asyncio.sleep(0.3)
        await kept.send(third)
    status = await asyncio.wait_for(kept.reader.readline(), 5)
    assert b" 200 " in status
    # Kept alive, then idle: closed after the idle timeout, not before the header one.
    assert not await kept.closed_within(0.6)
    assert await kept.closed_within(1.5)


async def test_past_the_caps_the_longest_waiting_connection_gives_way(
    notifier, sandbox, connect_subscriber, callbacks
) -> None:
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    _limit(notifier, max_connections=5, max_connections_per_peer=3)
    address = notifier.app.live.ingress_address
    first = [await Raw.open(address, "127.0.0.2") for _ in range(3)]
    await asyncio.sleep(0.05)
    fourth = await Raw.open(address, "127.0.0.2")
    assert await first[0].closed_within(1.0)  # per address: its own oldest gave way
    assert not await first[1].closed_within(0.1)
    others = [await Raw.open(address, "127.0.0.3") for _ in range(2)]
    # All five slots held by idle sockets: Zoho's callback still gets in.
    for n in range(3):
        answer = await callbacks.crm(channel["notify_url"], crm_body(channel, [str(n)]))
        assert answer.status_code == 200
    assert notifier.app.live.ingress.guard.open <= 5
    for raw in (*first, fourth, *others):
        raw.close()


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs util-linux's prlimit")
@pytest.mark.slow
async def test_under_a_256_file_limit_300_idle_sockets_do_not_stop_real_callbacks(
    notifier, sandbox, connect_subscriber, callbacks, notifier_database_url
) -> None:
    """Issue 22: 300 idle sockets under a 256-file limit made every callback fail and wrote
    223,343 ERROR lines in 25 s. The ingress alone, as `zoho-notifier ingress` runs it."""
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    alone = await asyncio.to_thread(
        ServiceProcess, "notifier", {
            "NOTIFIER_DATABASE_URL": notifier_database_url,
            "NOTIFIER_BROKER_TARGET": "127.0.0.1:1",
            "LOG_LEVEL": "INFO",
        }, "ingress", first_line_prefix="ingress listening on ",
        argv=["prlimit", "--nofile=256:256", "--", *_python_ingress()],
    )
    held: list[Raw] = []
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 1024 <= hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
        for n in range(300):
            try:
                held.append(await Raw.open(alone.address, f"127.0.1.{1 + n // 50}"))
            except OSError:
                break
        url = channel["notify_url"].replace(channel["notify_url"].split("/")[2], alone.address)
        for n in range(5):
            began = time.monotonic()
            answer = await callbacks.crm(url, crm_body(channel, [f"9{n}"]))
            assert answer.status_code == 200
            assert time.monotonic() - began < 2.0
        await asyncio.sleep(2.0)
        errors = [line for line in alone.stderr.splitlines()
                  if " ERROR " in line or "Traceback" in line]
        assert errors == [], errors[:5]
        assert len(alone.stderr.splitlines()) < 50
    finally:
        for raw in held:
            raw.close()
        alone.terminate()


def _python_ingress() -> list[str]:
    import sys

    return [sys.executable, "-m", "notifier", "ingress"]
