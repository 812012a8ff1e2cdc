"""Live-events soak on PostgreSQL: 200 watchers and steady deliveries for N minutes,
the notifier's RSS over time, and what each watcher streamed against what was acked.

    .venv/bin/python bench/live_soak.py [--minutes 10] [--watchers 200] [--rate 20]

Sandbox, broker and one notifier (ingress in-process) run as real processes; a load
process POSTs one-record CRM callbacks at `--rate` per second (open loop); the watchers
(WatchNotifications for the demo user, over `--channels` connections) run in this
process. Every `--sample-seconds` it prints the notifier's VmRSS, acked so far and the
fewest / most events a watcher has streamed. At the end every watcher must have streamed
every acked event exactly once, in cursor order, and the RSS must be flat: the last
sample at most `--growth` (default 10 %) above the sample at a quarter of the run.
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


def _load(url: str, channel: dict[str, Any], rate: float, seconds: float, sent: Any,
          acked: Any, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """Open loop at `rate`; counts into the shared `sent` and `acked`; puts the acked ids."""
    import aiohttp

    async def main() -> None:
        ok: list[str] = []
        failed = 0
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
            async def one(i: int) -> None:
                nonlocal failed
                record = f"s{i}"
                body = {"server_time": int(time.time() * 1000), "query_params": {},
                        "module": "Leads", "ids": [record], "affected_fields": [],
                        "operation": "edit", "channel_id": channel["channel_id"],
                        "token": channel["token"]}
                with sent.get_lock():
                    sent.value += 1
                try:
                    async with session.post(url, json=body) as answer:
                        await answer.read()
                        if answer.status == 200:
                            ok.append(record)
                            with acked.get_lock():
                                acked.value += 1
                        else:
                            failed += 1
                except aiohttp.ClientError:
                    failed += 1

            tasks = []
            start = time.perf_counter()
            for i in range(int(rate * seconds)):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(one(i)))
            await asyncio.gather(*tasks, return_exceptions=True)
        out.put((ok, failed))

    asyncio.run(main())


class Watcher:
    def __init__(self) -> None:
        self.records: set[str] = set()
        self.streamed = 0
        self.repeated = 0
        self.out_of_order = 0
        self.last_cursor = ""
        self.error = ""

    async def run(self, stub: notifier_pb2_grpc.NotifierServiceStub, ready: asyncio.Event,
                  stop: asyncio.Event) -> None:
        call = stub.WatchNotifications(notifier_pb2.WatchNotificationsRequest(user_id="demo"))
        try:
            await call.initial_metadata()
            ready.set()
            reader = asyncio.ensure_future(self._read(call))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait([reader, stopping], return_when=asyncio.FIRST_COMPLETED)
            if reader.done() and reader.exception() is not None:
                self.error = repr(reader.exception())
            stopping.cancel()
        finally:
            ready.set()
            call.cancel()

    async def _read(self, call: Any) -> None:
        async for event in call:
            self.streamed += 1
            # Cursors are fixed-width hex: string order is cursor order.
            if event.cursor <= self.last_cursor:
                self.out_of_order += 1
            self.last_cursor = event.cursor
            if event.record_id in self.records:
                self.repeated += 1
            self.records.add(event.record_id)


async def _setup(started: list[h.Service], url: str) -> tuple[h.Service, dict[str, Any]]:

    sandbox = h.Service("sandbox", {}, "--listen", "127.0.0.1:0")
    started.append(sandbox)
    broker = h.Service("broker", h.broker_env(sandbox.origin, url))
    started.append(broker)
    key = h.broker_env(sandbox.origin, url)["BROKER_ENCRYPTION_KEY"]
    notifier = h.Service("notifier", {
        "NOTIFIER_LISTEN": "127.0.0.1:0", "NOTIFIER_BROKER_TARGET": broker.address,
        "ZOHO_EXTRA_ORIGINS": sandbox.origin, "NOTIFIER_DATABASE_URL": url,
        "NOTIFIER_ENCRYPTION_KEY": key, "LOG_LEVEL": "WARNING",
        "NOTIFIER_INGRESS_LISTEN": f"127.0.0.1:{free_port()}",
        # 200 streams from one host: the per-peer cap must not be what is measured.
        "NOTIFIER_MAX_STREAMS_PER_PEER": "10000"})
    started.append(notifier)
    channel = await h.demo_crm_subscription(sandbox.origin, broker.address, notifier.address)
    return notifier, channel


async def run(args: argparse.Namespace) -> bool:
    report = h.Report("live events soak", " ".join(["bench/live_soak.py", *sys.argv[1:]]))
    seconds = args.minutes * 60
    from notifier.database import DATABASE

    with h.postgres_database("bench_live_soak") as url, h.services() as started:
        DATABASE.migrate(url)
        notifier, channel = await _setup(started, url)
        channels = [grpc.aio.insecure_channel(notifier.address) for _ in range(args.channels)]
        stubs = [notifier_pb2_grpc.NotifierServiceStub(c) for c in channels]
        watchers = [Watcher() for _ in range(args.watchers)]
        stop = asyncio.Event()
        readies = [asyncio.Event() for _ in watchers]
        tasks = [asyncio.ensure_future(w.run(stubs[i % len(stubs)], readies[i], stop))
                 for i, w in enumerate(watchers)]
        await asyncio.gather(*(r.wait() for r in readies))
        context = multiprocessing.get_context("spawn")  # a fork would share our gRPC state
        sent, acked = context.Value("q", 0), context.Value("q", 0)
        out: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
        load = context.Process(target=_load, args=(
            channel["notify_url"], channel, args.rate, seconds, sent, acked, out))
        rss_start = notifier.status_kib("VmRSS")
        samples: list[tuple[float, int]] = []
        print(f"{'t (s)':>7} {'notifier RSS (MiB)':>19} {'sent':>8} {'acked':>8} "
              f"{'streamed min / max per watcher':>31}", flush=True)
        began = time.monotonic()
        load.start()
        # The load process's result is read as soon as it is put: a process that has put
        # into a queue does not exit until the queue is read.
        result = asyncio.ensure_future(asyncio.to_thread(out.get, True, seconds + 240))
        while not result.done():
            await asyncio.wait([result], timeout=min(args.sample_seconds,
                                                      max(1.0, seconds - _since(began))))
            rss = notifier.status_kib("VmRSS")
            samples.append((_since(began), rss))
            counts = [w.streamed for w in watchers]
            print(f"{_since(began):7.0f} {rss / 1024:19.1f} {sent.value:8d} {acked.value:8d} "
                  f"{min(counts):>14d} / {max(counts):<14d}", flush=True)
            if _since(began) > seconds + 120:
                break
        ok, failed = await result
        load.join(10)
        expected = set(ok)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(not expected <= w.records for w in watchers):
            await asyncio.sleep(0.2)
        peak = h.peak_rss_mb(notifier.pid)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in channels:
            await c.close()
    complete = sum(expected <= w.records for w in watchers)
    repeated = sum(w.repeated for w in watchers)
    disorder = sum(w.out_of_order for w in watchers)
    extra = sum(len(w.records - expected) for w in watchers)
    errors = [w.error for w in watchers if w.error]
    base = next((rss for at, rss in samples if at >= seconds / 4), samples[0][1])
    end = samples[-1][1]
    report.row("figure", "value")
    report.row("minutes / watchers / deliveries per s", f"{args.minutes:g} / {args.watchers} / "
               f"{args.rate:g}")
    report.row("deliveries sent / acked / failed", f"{sent.value} / {len(ok)} / {failed}")
    report.row("watchers that streamed every acked event", f"{complete} / {args.watchers}")
    report.row("events streamed in all (min / max per watcher)",
               f"{sum(w.streamed for w in watchers)} "
               f"({min(w.streamed for w in watchers)} / {max(w.streamed for w in watchers)})")
    report.row("repeated / out of order / not acked (all watchers)",
               f"{repeated} / {disorder} / {extra}")
    report.row("notifier RSS before / at a quarter / end (MiB)",
               f"{rss_start / 1024:.1f} / {base / 1024:.1f} / {end / 1024:.1f}")
    report.row("notifier peak RSS (MiB)", peak)
    if errors:
        report.row("watcher errors (first)", errors[0][:120])
    report.target("every acked event streamed once, in order, to every watcher",
                  complete == args.watchers and not repeated and not disorder and not errors,
                  f"{complete}/{args.watchers} complete, {repeated} repeated, "
                  f"{disorder} out of order, {len(errors)} errors")
    growth = end / base - 1
    report.target(f"RSS flat (end <= {args.growth:.0%} above the quarter mark)",
                  growth <= args.growth, f"{growth:+.1%}")
    return report.print()


def _since(began: float) -> float:
    return time.monotonic() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--watchers", type=int, default=200)
    parser.add_argument("--channels", type=int, default=10, help="connections the watchers share")
    parser.add_argument("--rate", type=float, default=20, help="deliveries per second")
    parser.add_argument("--sample-seconds", type=float, default=15)
    parser.add_argument("--growth", type=float, default=0.10)
    return 0 if asyncio.run(run(parser.parse_args())) else 1


if __name__ == "__main__":
    sys.exit(main())
