"""Live events under load, on PostgreSQL: the ingress's time to its 200, every
acknowledged event streamed, and the time from a callback sent to a watcher receiving
it, on the replica that took it and on another replica.

A load process POSTs Zoho-shaped CRM callbacks (one record each) to notifier A's
ingress at a steady rate; a watcher on A and one on B (same PostgreSQL, NOTIFY) count
what they receive. A flood of forged deliveries can run beside it (--forged-rate).

    .venv/bin/python bench/ingress.py [--rate 500] [--seconds 60] [--forged-rate 0]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h
import grpc

from tests.integration.stack import free_port
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc


def _load(url: str, channel: dict[str, Any], rate: float, seconds: float, forged: float,
          out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Open loop: sends on schedule whether or not earlier answers came back."""
    import aiohttp

    async def main() -> None:
        results: list[tuple[str, float, float, int]] = []
        forged_statuses: list[int] = []
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def one(i: int, fake: bool) -> None:
                record = f"{'f' if fake else 'r'}{i}"
                body = {"server_time": int(time.time() * 1000), "query_params": {},
                        "module": "Leads", "ids": [record], "affected_fields": [],
                        "operation": "insert", "channel_id": channel["channel_id"],
                        "token": "forged-" + "x" * 30 if fake else channel["token"]}
                sent = time.time()
                async with session.post(url, json=body) as answer:
                    await answer.read()
                    if fake:
                        forged_statuses.append(answer.status)
                    else:
                        results.append((record, sent, time.time(), answer.status))

            tasks = []
            start = time.perf_counter()
            total = int(rate * seconds)
            fakes = int(forged * seconds)
            schedule = sorted([(i / rate, i, False) for i in range(total)]
                              + [(i / forged, i, True) for i in range(fakes)])
            for at, i, fake in schedule:
                delay = start + at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(one(i, fake)))
            await asyncio.gather(*tasks, return_exceptions=True)
        out.put((results, forged_statuses))

    asyncio.run(main())


async def _watch(address: str, seen: dict[str, float], stop: asyncio.Event) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = notifier_pb2_grpc.NotifierServiceStub(channel)
        call = stub.WatchNotifications(notifier_pb2.WatchNotificationsRequest(user_id="demo"))
        await call.initial_metadata()
        stop_task = asyncio.ensure_future(stop.wait())
        reader = asyncio.ensure_future(_read(call, seen))
        await asyncio.wait([stop_task, reader], return_when=asyncio.FIRST_COMPLETED)
        call.cancel()


async def _read(call: Any, seen: dict[str, float]) -> None:
    async for event in call:
        seen[event.record_id] = time.time()


async def run(args: argparse.Namespace) -> bool:
    report = h.Report("ingress and live events", " ".join(["bench/ingress.py", *sys.argv[1:]]))
    from notifier.database import DATABASE

    with h.postgres_database("bench_ingress") as url, h.services() as started:
        DATABASE.migrate(url)
        sandbox = h.Service("sandbox", {}, "--listen", "127.0.0.1:0")
        started.append(sandbox)
        broker = h.Service("broker", h.broker_env(sandbox.origin, url))
        started.append(broker)
        key = h.broker_env(sandbox.origin, url)["BROKER_ENCRYPTION_KEY"]
        ingress_port = free_port()
        common = {"NOTIFIER_LISTEN": "127.0.0.1:0", "NOTIFIER_BROKER_TARGET": broker.address,
                  "ZOHO_EXTRA_ORIGINS": sandbox.origin, "NOTIFIER_DATABASE_URL": url,
                  "NOTIFIER_ENCRYPTION_KEY": key, "LOG_LEVEL": "WARNING",
                  "NOTIFIER_EVENT_POLL_SECONDS": "2"}
        argv = None
        if args.profile:
            argv = [str(Path(sys.executable).with_name("py-spy")), "record", "--format", "raw",
                    "-o", args.profile, "--", sys.executable, "-m", "notifier"]
        a = h.Service("notifier", {**common,
                                   "NOTIFIER_INGRESS_LISTEN": f"127.0.0.1:{ingress_port}"},
                      argv=argv)
        b = h.Service("notifier", {**common,
                                   "NOTIFIER_INGRESS_LISTEN": f"127.0.0.1:{free_port()}"})
        started += [a, b]
        channel = await h.demo_crm_subscription(sandbox.origin, broker.address, a.address)
        seen_a: dict[str, float] = {}
        seen_b: dict[str, float] = {}
        stop = asyncio.Event()
        watchers = [asyncio.ensure_future(_watch(a.address, seen_a, stop)),
                    asyncio.ensure_future(_watch(b.address, seen_b, stop))]
        await asyncio.sleep(1.0)
        # spawn: a forked child would inherit this process's gRPC state.
        context = multiprocessing.get_context("spawn")
        out: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
        load = context.Process(target=_load, args=(
            channel["notify_url"], channel, args.rate, args.seconds, args.forged_rate, out))
        cpu_before = h.cpu_seconds(a.pid)
        load.start()
        results, forged = await asyncio.to_thread(out.get, True, args.seconds + 120)
        load.join(10)
        cpu = h.cpu_seconds(a.pid) - cpu_before
        acked = [r for r in results if r[3] == 200]
        deadline = time.time() + 15
        while time.time() < deadline and not all(r[0] in seen_a and r[0] in seen_b for r in acked):
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*watchers, return_exceptions=True)
    ack_ms = [(r[2] - r[1]) * 1000 for r in acked]
    duration = max(r[2] for r in results) - min(r[1] for r in results)
    same = [(seen_a[r[0]] - r[1]) * 1000 for r in acked if r[0] in seen_a]
    other = [(seen_b[r[0]] - r[1]) * 1000 for r in acked if r[0] in seen_b]
    report.row("figure", "value")
    report.row("deliveries sent / acknowledged (200)", f"{len(results)} / {len(acked)}")
    report.row("achieved rate (per s)", len(results) / duration)
    report.row("time to 200: p50 / p99 / max (ms)",
               f"{h.median(ack_ms):.1f} / {h.percentile(ack_ms, 99):.1f} / {max(ack_ms):.1f}")
    report.row("streamed on A / on B", f"{len(same)} / {len(other)}")
    report.row("sent -> watcher on A: p50 / p99 (ms)",
               f"{h.median(same):.1f} / {h.percentile(same, 99):.1f}")
    report.row("sent -> watcher on B: p50 / p99 (ms)",
               f"{h.median(other):.1f} / {h.percentile(other, 99):.1f}")
    report.row("notifier A CPU (s)", cpu)
    if forged:
        report.row("forged deliveries / answered 401", f"{len(forged)} / {forged.count(401)}")
    report.target("ingress p99 <= 50 ms", h.percentile(ack_ms, 99) <= 50,
                  f"{h.percentile(ack_ms, 99):.1f} ms at {len(results) / duration:.0f}/s")
    report.target("every acknowledged event streamed", len(same) == len(other) == len(acked),
                  f"A {len(same)}, B {len(other)} of {len(acked)}")
    report.target("same replica p50 <= 10 ms", h.median(same) <= 10, f"{h.median(same):.1f} ms")
    report.target("other replica p50 <= 100 ms", h.median(other) <= 100,
                  f"{h.median(other):.1f} ms")
    return report.print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--forged-rate", type=float, default=0)
    parser.add_argument("--profile", default="", help="py-spy raw profile of notifier A")
    return 0 if asyncio.run(run(parser.parse_args())) else 1


if __name__ == "__main__":
    sys.exit(main())
