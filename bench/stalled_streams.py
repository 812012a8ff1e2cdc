"""Stalled consumers: 1,500 ListNotifications streams whose client never reads (an HTTP/2
window of 16 bytes that is never reopened), against one notifier; its RSS, and the latency
of normal calls from another client meanwhile, against a baseline taken first.

    .venv/bin/python bench/stalled_streams.py             # 1,500 stalled streams, 100 a connection
    .venv/bin/python bench/stalled_streams.py --per-connection 1   # 1,500 connections, one each
    .venv/bin/python bench/stalled_streams.py --quick     # 300

Processes: the sandbox, one broker (SQLite) and one notifier (`python -m notifier`, default
stream caps, NOTIFIER_STREAM_WRITE_TIMEOUT_SECONDS shortened to --write-timeout so the run
is short); this script plays both clients: raw HTTP/2 connections of 100 streams each (the
stalled ones, tests/plugins/raw_h2.py) and a grpc channel timing complete 250-item lists.
Targets: the notifier's peak RSS < 300 MB; the normal calls' median during the stall <= 1.5x
the baseline; every stalled stream refused (TOO_MANY_STREAMS) or ended (CONSUMER_STALLED).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import selectors
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h
import grpc

from sandbox.demo.tenant import DEMO_REFRESH_TOKEN, DEMO_SCOPES
from tests.plugins.raw_h2 import RawH2Client
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

MAX_RSS_MB = 300
MAX_LATENCY_RATIO = 1.5
PER_CONNECTION = 100
PATH = "/zoho.notifier.v1.NotifierService/ListNotifications"
LIST = notifier_pb2.ListNotificationsRequest(user_id="demo", app_type=common_pb2.APP_TYPE_CRM)


def rss_mb(service: h.Service, field: str = "VmRSS") -> float:
    return service.status_kib(field) / 1024


def scrape(metrics_port: int) -> tuple[float, dict[str, float]]:
    """(open streams, ListNotifications calls ended so far by code) from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as page:
        text = page.read().decode()
    open_now, ended = 0.0, {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "grpc_server_open_streams":
                open_now = sample.value
            elif sample.name == "grpc_server_handled_total" and sample.labels["method"] == PATH:
                ended[sample.labels["code"]] = sample.value
    return open_now, ended


async def list_latencies(address: str, count: int) -> list[float]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = notifier_pb2_grpc.NotifierServiceStub(channel)
        times = []
        for _ in range(count):
            started = time.perf_counter()
            items = [n async for n in stub.ListNotifications(LIST, timeout=30)]
            times.append(time.perf_counter() - started)
            assert len(items) == 250, len(items)
        return times


class StalledClients:
    """Connections of `per_connection` streams each, read (pings, settings) but never
    drained; one thread reads them all."""

    def __init__(self, address: str, streams: int, per_connection: int) -> None:
        self.clients: list[RawH2Client] = []
        self.stop = threading.Event()
        self.selector = selectors.DefaultSelector()
        self.unopened = 0
        request = LIST.SerializeToString()
        for first in range(0, streams, per_connection):
            try:
                client = RawH2Client(address, window=16, drain=False)
                for _ in range(min(per_connection, streams - first)):
                    client.start(PATH, request)
            except OSError:
                # Refused or closed at once (a connection cap): its streams never start.
                self.unopened += min(per_connection, streams - first)
                continue
            self.clients.append(client)
            self.selector.register(client.sock, selectors.EVENT_READ, client)
        self.threads = [threading.Thread(target=self._pump, daemon=True)]
        self.threads[0].start()

    def _pump(self) -> None:
        while not self.stop.is_set():
            for key, _ in self.selector.select(0.2):
                client = key.data
                try:
                    data = client.sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    # The server closed the connection: its streams are over.
                    self.selector.unregister(client.sock)
                    for reply in client.replies.values():
                        reply.ended = True
                    continue
                client.received(data)

    def ended(self) -> dict[str, int]:
        """Streams the client saw end, by how: a status, or a reset."""
        seen: dict[str, int] = {}
        for client in self.clients:
            for reply in list(client.replies.values()):
                if reply.ended:
                    how = (f"reset {reply.reset}" if reply.reset is not None
                           else f"status {reply.grpc_status}")
                    seen[how] = seen.get(how, 0) + 1
        return seen

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(5)
        for client in self.clients:
            client.close()


async def connect(broker: str, sandbox_origin: str) -> None:
    async with grpc.aio.insecure_channel(broker) as channel:
        await broker_pb2_grpc.TokenBrokerServiceStub(channel).CreateConnection(
            broker_pb2.CreateConnectionRequest(
                user_id="demo", accounts_server=sandbox_origin, refresh_token=DEMO_REFRESH_TOKEN,
                api_domain=sandbox_origin, scopes=list(DEMO_SCOPES)), timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 stalled streams")
    parser.add_argument("--streams", type=int, default=1500)
    parser.add_argument("--calls", type=int, default=30, help="normal lists timed per phase")
    parser.add_argument("--write-timeout", type=float, default=10.0)
    parser.add_argument("--per-connection", type=int, default=PER_CONNECTION,
                        help="stalled streams on each connection (1: a connection each)")
    args = parser.parse_args()
    if args.quick:
        args.streams = 300
    # A connection each needs a descriptor each, here and in the notifier (which inherits
    # this limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 2 * args.streams + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    metrics_port = 19400 + int(time.time()) % 500
    with h.services() as started, tempfile.TemporaryDirectory() as scratch:
        sandbox = h.Service("sandbox", {}, "--listen", "127.0.0.1:0")
        started.append(sandbox)
        broker = h.Service("broker", h.broker_env(sandbox.origin, f"sqlite:///{scratch}/b.db"))
        started.append(broker)
        notifier = h.Service("notifier", {
            "NOTIFIER_LISTEN": "127.0.0.1:0", "NOTIFIER_BROKER_TARGET": broker.address,
            "ZOHO_EXTRA_ORIGINS": sandbox.origin, "LOG_LEVEL": "WARNING",
            "NOTIFIER_METRICS_PORT": str(metrics_port),
            "NOTIFIER_STREAM_WRITE_TIMEOUT_SECONDS": str(args.write_timeout)})
        started.append(notifier)
        asyncio.run(connect(broker.address, sandbox.origin))
        baseline = asyncio.run(list_latencies(notifier.address, args.calls))
        rss_before = rss_mb(notifier)

        exhausted_before = scrape(metrics_port)[1].get("RESOURCE_EXHAUSTED", 0.0)
        stalled = StalledClients(notifier.address, args.streams, args.per_connection)
        # Landed: every stalled stream is open, was ended for stalling (which its reader
        # cannot see), or was refused (which it does see: TOO_MANY_STREAMS from us, or
        # gRPC's own shedding of calls it had no time to start).
        began = time.monotonic()
        peak_open = 0.0
        while time.monotonic() - began < 120:
            open_now, ended = scrape(metrics_port)
            peak_open = max(peak_open, open_now)
            seen = stalled.ended()
            ended_stalling = (ended.get("RESOURCE_EXHAUSTED", 0.0) - exhausted_before
                              - seen.get("status 8", 0))
            if open_now + ended_stalling + sum(seen.values()) + stalled.unopened >= args.streams:
                break
            time.sleep(0.25)
        landed = time.monotonic() - began
        rss_during = rss_mb(notifier)
        during = asyncio.run(list_latencies(notifier.address, args.calls))
        # Past the write timeout every stalled stream still open has been ended.
        time.sleep(args.write_timeout + 3.0)
        open_after, ended = scrape(metrics_port)
        rss_after = rss_mb(notifier)
        peak = rss_mb(notifier, "VmHWM")
        after = asyncio.run(list_latencies(notifier.address, args.calls))
        stalled.close()

    base, mid, end = h.median(baseline), h.median(during), h.median(after)
    report = h.Report(f"stalled streams: {args.streams} ListNotifications streams that never "
                      f"read (16-byte window), {args.per_connection} a connection",
                      "bench/stalled_streams.py" + (" --quick" if args.quick else "")
                      + f" --per-connection {args.per_connection}")
    report.row("", "notifier RSS", "open streams", "normal list p50", "p90", "x baseline")
    report.row("before", f"{rss_before:.0f} MB", "0", f"{1000 * base:.1f} ms",
               f"{1000 * h.percentile(baseline, 90):.1f} ms", "1.00")
    report.row(f"stalled (all landed, {landed:.1f} s)", f"{rss_during:.0f} MB",
               f"{peak_open:.0f} (peak)", f"{1000 * mid:.1f} ms",
               f"{1000 * h.percentile(during, 90):.1f} ms", f"{mid / base:.2f}")
    report.row(f"{args.write_timeout:g} s write timeout later", f"{rss_after:.0f} MB",
               f"{open_after:.0f}", f"{1000 * end:.1f} ms",
               f"{1000 * h.percentile(after, 90):.1f} ms", f"{end / base:.2f}")
    report.row("peak (VmHWM)", f"{peak:.0f} MB", "", "", "", "")
    report.row("stalled connections", f"{len(stalled.clients)} opened, "
               f"{stalled.unopened // args.per_connection} failed to connect", "", "", "", "")
    report.row("ends the stalled reader saw", ", ".join(
        f"{how} {n}" for how, n in sorted(seen.items())) or "none", "", "", "", "")
    report.row("ListNotifications ended, by code", ", ".join(
        f"{code} {n:.0f}" for code, n in sorted(ended.items())), "", "", "", "")
    report.target(f"peak RSS < {MAX_RSS_MB} MB", peak < MAX_RSS_MB, f"{peak:.0f} MB")
    report.target(f"normal calls during the stall <= {MAX_LATENCY_RATIO}x baseline, all served",
                  mid / base <= MAX_LATENCY_RATIO, f"{mid / base:.2f}x")
    report.target("every stalled stream ended by the write timeout", open_after == 0,
                  f"{open_after:.0f} still open")
    return 0 if report.print() else 1


if __name__ == "__main__":
    raise SystemExit(main())
