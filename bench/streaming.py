"""Streaming: ListNotifications of 1,000 CRM channels (5 pages of 200, 20 ms of sandbox
latency per page) against a direct sequential httpx read of the same pages with a token
already in hand; the same for ListNotificationPages (one message per page rather than per
item); and how soon the first item reaches the caller after the first page reached the
notifier.

    .venv/bin/python bench/streaming.py           # 12 rounds
    .venv/bin/python bench/streaming.py --quick   # 4 rounds

Processes: the sandbox, a broker (`python -m broker`, SQLite), a notifier (`python -m
notifier`) for the wall-time comparison, and a second notifier (bench/_notifier_probe.py:
the same NotifierApp with a transport that logs when each page has fully arrived) for the
first-item latency. This script is the client. Rounds alternate direct, items, pages,
probe. Targets: median wall time <= 1.1x median direct read, for each RPC; first item
within 5 ms of the first page's arrival (median and p90 over rounds). bench/stream_floor.py
says why the item-by-item RPC cannot reach 1.1x here.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h
import grpc
import httpx

from sandbox.control.client import SandboxControl
from sandbox.demo.tenant import DEMO_SCOPES
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

USER = "streamer"


async def run(args: argparse.Namespace, sandbox_origin: str, broker: str, notifier: str,
              probe: h.Service) -> h.Report:
    async with SandboxControl(sandbox_origin) as sandbox:
        await sandbox.reset()
        rt = await sandbox.add_refresh_token(user=USER)
        total = await sandbox.seed_crm_channels(user=USER, count=args.items, modules=["Leads"])
        assert total == args.items, total
        await sandbox.latency("crm.watch", args.latency_ms)
    broker_channel = grpc.aio.insecure_channel(broker)
    stub = broker_pb2_grpc.TokenBrokerServiceStub(broker_channel)
    await stub.CreateConnection(broker_pb2.CreateConnectionRequest(
        user_id=USER, accounts_server=sandbox_origin, refresh_token=rt,
        api_domain=sandbox_origin, scopes=list(DEMO_SCOPES)), timeout=10)
    token = await stub.GetToken(broker_pb2.GetTokenRequest(
        user_id=USER, app_type=common_pb2.APP_TYPE_CRM), timeout=10)

    http = httpx.AsyncClient(trust_env=False)
    request = notifier_pb2.ListNotificationsRequest(user_id=USER, app_type=common_pb2.APP_TYPE_CRM)
    pages_request = notifier_pb2.ListNotificationPagesRequest(
        user_id=USER, app_type=common_pb2.APP_TYPE_CRM)
    stubs = {name: notifier_pb2_grpc.NotifierServiceStub(grpc.aio.insecure_channel(addr))
             for name, addr in (("notifier", notifier), ("probe", probe.address))}

    async def direct() -> tuple[float, int]:
        started = time.monotonic()
        items, page = 0, 1
        while True:
            reply = await http.get(
                f"{sandbox_origin}/crm/v8/actions/watch",
                params={"page": str(page), "per_page": "200"},
                headers={"Authorization": f"Zoho-oauthtoken {token.access_token}"}, timeout=10)
            reply.raise_for_status()
            body = reply.json()
            items += len(body["watch"])
            if not body["info"]["more_records"]:
                return time.monotonic() - started, items
            page += 1

    async def streamed(name: str) -> tuple[float, int, float]:
        started = time.monotonic()
        first = 0.0
        items = 0
        async for _ in stubs[name].ListNotifications(request, timeout=30):
            if items == 0:
                first = time.monotonic()
            items += 1
        return time.monotonic() - started, items, first

    async def paged() -> tuple[float, int]:
        started = time.monotonic()
        items = 0
        async for page in stubs["notifier"].ListNotificationPages(pages_request, timeout=30):
            items += len(page.notifications)
        return time.monotonic() - started, items

    def page_one_arrival(since: int) -> float:
        for line in probe.stderr_lines[since:]:
            if line.startswith("PAGE_ARRIVED") and "page=1&" in line:
                return float(line.split()[1])
        raise RuntimeError("the probe logged no first page")

    # Warm-up: connections, caches, code paths.
    await direct()
    await streamed("notifier")
    await streamed("probe")
    await paged()
    results: dict[str, list[float]] = {"direct": [], "notifier": [], "pages": [],
                                       "first_item_ms": []}
    report = h.Report(
        f"streaming: ListNotifications of {args.items} CRM channels, "
        f"{args.latency_ms} ms sandbox latency per page",
        "bench/streaming.py" + (" --quick" if args.quick else ""))
    report.row("round", "direct ms", "items ms", "ratio", "pages ms", "ratio",
               "first item after page 1 ms")
    for n in range(args.rounds):
        seconds, count = await direct()
        assert count == args.items, count
        results["direct"].append(seconds)
        seconds_n, count, _ = await streamed("notifier")
        assert count == args.items, count
        results["notifier"].append(seconds_n)
        seconds_p, count = await paged()
        assert count == args.items, count
        results["pages"].append(seconds_p)
        mark = len(probe.stderr_lines)
        _, count, first = await streamed("probe")
        await asyncio.sleep(0.05)  # the stderr reader thread catches up
        arrived = page_one_arrival(mark)
        results["first_item_ms"].append(1000 * (first - arrived))
        report.row(n + 1, 1000 * seconds, 1000 * seconds_n, seconds_n / seconds,
                   1000 * seconds_p, seconds_p / seconds, 1000 * (first - arrived))
    direct_ms = 1000 * h.median(results["direct"])
    notifier_ms = 1000 * h.median(results["notifier"])
    pages_ms = 1000 * h.median(results["pages"])
    report.row("median", direct_ms, notifier_ms, notifier_ms / direct_ms, pages_ms,
               pages_ms / direct_ms, h.median(results["first_item_ms"]))
    for rpc, key, ms in (("ListNotifications", "notifier", notifier_ms),
                         ("ListNotificationPages", "pages", pages_ms)):
        ratios = [b / a for a, b in zip(results["direct"], results[key], strict=True)]
        report.target(f"{rpc} wall time <= 1.1x direct read", ms / direct_ms <= 1.1,
                      f"{ms / direct_ms:.3f}x median ({ms:.1f} vs {direct_ms:.1f} ms); "
                      f"per round {min(ratios):.2f}..{max(ratios):.2f}")
    p90 = h.percentile(results["first_item_ms"], 90)
    report.target("first item within 5 ms of page 1 arriving",
                  h.median(results["first_item_ms"]) <= 5 and p90 <= 5,
                  f"median {h.median(results['first_item_ms']):.2f} ms, p90 {p90:.2f} ms, "
                  f"max {max(results['first_item_ms']):.2f} ms")
    await http.aclose()
    await broker_channel.close()
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 rounds")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--profile", metavar="DIR", help="the notifier under py-spy: "
                        "DIR/notifier-stream.txt (collapsed stacks; pip install py-spy)")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 4
    with tempfile.TemporaryDirectory() as tmp, h.services() as started:
        sandbox = h.Service("sandbox", {}, "--listen", "127.0.0.1:0")
        started.append(sandbox)
        url = f"sqlite:///{tmp}/broker.db"
        from broker.storage.tables import DATABASE
        DATABASE.migrate(url)
        broker = h.Service("broker", h.broker_env(sandbox.origin, url))
        started.append(broker)
        env = {"NOTIFIER_LISTEN": "127.0.0.1:0", "NOTIFIER_BROKER_TARGET": broker.address,
               "ZOHO_EXTRA_ORIGINS": sandbox.origin, "LOG_LEVEL": "WARNING"}
        argv = None
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            argv = [str(Path(sys.executable).parent / "py-spy"), "record", "-r", "500",
                    "--format", "raw", "-o", str(Path(args.profile) / "notifier-stream.txt"),
                    "--", sys.executable, "-m", "notifier"]
        notifier = h.Service("notifier", env, argv=argv)
        started.append(notifier)
        probe = h.Service("probe", env, argv=[sys.executable,
                                              str(h.REPO_ROOT / "bench/_notifier_probe.py")])
        probe.wrapped = False
        started.append(probe)
        report = asyncio.run(run(args, sandbox.origin, broker.address, notifier.address, probe))
    return 0 if report.print() else 1


if __name__ == "__main__":
    raise SystemExit(main())
