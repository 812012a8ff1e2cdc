"""Sandbox callbacks under load: can the sandbox send 1,000 CRM callbacks a second without
becoming the bottleneck of a benchmark?

    .venv/bin/python bench/sandbox_callbacks.py                 # 1,000/s for 5 s, then 2,000/s
    .venv/bin/python bench/sandbox_callbacks.py --quick         # 1,000/s for 2 s
    .venv/bin/python bench/sandbox_callbacks.py --rate 1500 --seconds 10 --channels 50

Processes: the sandbox (`python -m sandbox --no-demo`), and this script as both the driver
(`POST /_sandbox/changes`, one record each, `wait: false`, at rate/channels a second) and the
receiver (an aiohttp server on loopback answering 200). Every change reaches `--channels`
channels, so each change is that many callbacks.

Measured: callbacks received per second, delivery latency (change made -> callback received,
from the body's `server_time`), the sandbox's own send latency (its counters), and the
sandbox's CPU use from /proc. Targets: at 1,000/s every callback arrives, and the sandbox uses
under 60% of one core (so it is not what limits a benchmark that drives it at that rate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h
from aiohttp import web

from sandbox.control.client import SandboxControl

CPU_TARGET = 0.60


class Receiver:
    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.latencies_ms: list[float] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        now = time.time()
        self.arrivals.append(now)
        self.latencies_ms.append(now * 1000 - body["server_time"])
        return web.Response(text="ok")


async def start_receiver(receiver: Receiver) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/cb/{channel}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def run_phase(
    sb: SandboxControl, receiver: Receiver, pid: int, rate: int, seconds: float, channels: int
) -> dict[str, float]:
    receiver.arrivals.clear()
    receiver.latencies_ms.clear()
    await sb.clear_deliveries()
    changes_per_second = rate / channels
    total_changes = int(changes_per_second * seconds)
    cpu_before, started = h.cpu_seconds(pid), time.monotonic()
    calls = []
    for n in range(total_changes):
        # Paced from the start and not awaited one by one, so a slow call does not lower
        # the rate that follows.
        delay = started + n / changes_per_second - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        calls.append(
            asyncio.create_task(
                sb.change_records(
                    "crm", "Leads", "update", [str(n)], fields=["Company"], wait=False
                )
            )
        )
    await asyncio.gather(*calls)
    sent_for = time.monotonic() - started
    await sb.wait_for_deliveries(timeout=30)
    cpu = h.cpu_seconds(pid) - cpu_before
    elapsed = time.monotonic() - started
    expected = total_changes * channels
    stats = await sb.delivery_stats()
    send_p99 = max((s["latency_ms"]["p99"] or 0.0) for s in stats.values()) if stats else 0.0
    failed = sum(s["failed"] for s in stats.values())
    first, last = (receiver.arrivals[0], receiver.arrivals[-1]) if receiver.arrivals else (0, 0)
    return {
        "target": rate,
        "expected": expected,
        "received": len(receiver.arrivals),
        "failed": failed,
        "rate": len(receiver.arrivals) / max(last - first, 1e-9),
        "p50": h.percentile(receiver.latencies_ms, 50),
        "p99": h.percentile(receiver.latencies_ms, 99),
        "send_p99": send_p99,
        "cpu": cpu / elapsed,
        "driver_lag": sent_for - seconds,
    }


async def main(args: argparse.Namespace) -> bool:
    receiver = Receiver()
    runner, origin = await start_receiver(receiver)
    report = h.Report(
        "sandbox callbacks: CRM deliveries per second",
        "bench/sandbox_callbacks.py " + " ".join(sys.argv[1:]),
    )
    report.row(
        "target/s", "expected", "received", "failed", "recv/s", "e2e p50 ms", "e2e p99 ms",
        "send p99 ms", "sandbox CPU", "driver lag s",
    )
    rates = [args.rate] if args.quick else [args.rate, args.rate * 2]
    seconds = 2.0 if args.quick else args.seconds
    try:
        with h.services() as started:
            sandbox = h.Service("sandbox", {}, "--listen", "127.0.0.1:0", "--no-demo")
            started.append(sandbox)
            async with SandboxControl(sandbox.origin) as sb:
                await sb.reset(demo=False)
                await sb.add_user("bench")
                items = [
                    {
                        "channel_id": str(8000001 + i),
                        "events": ["Leads.all"],
                        "notify_url": f"{origin}/cb/{i}",
                        "token": f"verify-{i}",
                    }
                    for i in range(args.channels)
                ]
                await sb.seed_crm_channels("demo", items=items, replace=True)
                results = []
                for rate in rates:
                    result = await run_phase(
                        sb, receiver, sandbox.proc.pid, rate, seconds, args.channels
                    )
                    results.append(result)
                    report.row(
                        rate, int(result["expected"]), int(result["received"]),
                        int(result["failed"]), result["rate"], result["p50"], result["p99"],
                        result["send_p99"], f"{result['cpu'] * 100:.0f}%", result["driver_lag"],
                    )
    finally:
        await runner.cleanup()
    first = results[0]
    report.target(
        f"every callback at {args.rate}/s arrives",
        first["received"] == first["expected"] and first["failed"] == 0,
        f"{int(first['received'])}/{int(first['expected'])}, {int(first['failed'])} failed",
    )
    report.target(
        f"sandbox under {CPU_TARGET:.0%} of a core at {args.rate}/s",
        first["cpu"] < CPU_TARGET,
        f"{first['cpu'] * 100:.0f}% (the rest of the core is headroom)",
    )
    return report.print()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="callbacks per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--channels", type=int, default=50, help="channels each change reaches")
    parser.add_argument("--quick", action="store_true")
    sys.exit(0 if asyncio.run(main(parser.parse_args())) else 1)
