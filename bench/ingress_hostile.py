"""The ingress under two cheap attacks (issue 22 items 1 and 2), against one notifier:

1. `--idle` (2,000) idle connections held open from 20 loopback addresses (each one the
   notifier closes is opened again at once), some trickling a header byte a second;
   meanwhile real CRM callbacks, one at a time: every one must get 200 at its baseline
   latency.
2. One verified callback built to expand: 1,000 ids and 200,000 field names (787 KiB),
   which once became 1,000 events holding all 200,000 names each (the loop blocked 33 s,
   RSS +4.8 GiB). Now: refused (413) in how long, and the notifier's RSS before and after.

    .venv/bin/python bench/ingress_hostile.py                      # 2,000 idle, 20 s
    .venv/bin/python bench/ingress_hostile.py --idle 300 --seconds 8   # quick

Processes: the sandbox, one broker and one notifier (SQLite), on loopback; the notifier
with NOTIFIER_INGRESS_MAX_CONNECTIONS=4096 so all the idle connections fit (at the
default cap the longest-waiting ones would give way instead), and this script's file
limit raised, which the notifier inherits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h
import httpx

ADDRESSES = 20


def scrape(metrics_port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as page:
        text = page.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "notifier_ingress_connections":
                found["open"] = sample.value
            elif sample.name == "notifier_ingress_connections_closed_total":
                found[sample.labels["reason"]] = sample.value
    return found


class IdleCrowd:
    """`count` connections kept open: each one closed is opened again."""

    def __init__(self, address: str, count: int) -> None:
        self.host, port = address.split(":")
        self.port = int(port)
        self.count = count
        self.open = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for n in range(self.count):
            source = f"127.0.2.{1 + n % ADDRESSES}"
            self._tasks.append(asyncio.create_task(self._hold(source, trickle=n % 10 == 0)))
            if n % 100 == 99:
                await asyncio.sleep(0.01)

    async def _hold(self, source: str, *, trickle: bool) -> None:
        while True:
            try:
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, local_addr=(source, 0))
            except OSError:
                await asyncio.sleep(0.1)
                continue
            self.open += 1
            try:
                if trickle:
                    for byte in b"POST /callbacks/crm/x HTTP/1.1\r\nX-Slow: " + b"a" * 1000:
                        writer.write(bytes([byte]))
                        await writer.drain()
                        await asyncio.sleep(1.0)
                else:
                    await reader.read()
            except OSError:
                pass
            finally:
                self.open -= 1
                writer.close()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _crowd(address: str, count: int, seconds: float) -> None:
    async def hold() -> None:
        crowd = IdleCrowd(address, count)
        await crowd.start()
        await asyncio.sleep(seconds)
        await crowd.stop()

    asyncio.run(hold())


def crm_body(channel: dict[str, Any], ids: list[str], **extra: Any) -> dict[str, Any]:
    return {"server_time": int(time.time() * 1000), "query_params": {}, "module": "Leads",
            "ids": ids, "affected_fields": [], "operation": "insert",
            "channel_id": channel["channel_id"], "token": channel["token"], **extra}


async def callbacks(url: str, channel: dict[str, Any], count: int, tag: str) -> list[float]:
    times = []
    async with httpx.AsyncClient(timeout=10) as http:
        for n in range(count):
            began = time.perf_counter()
            answer = await http.post(url, json=crm_body(channel, [f"{tag}{n}"]))
            times.append(time.perf_counter() - began)
            assert answer.status_code == 200, (answer.status_code, answer.text)
            await asyncio.sleep(0.05)
    return times


async def attack(args: argparse.Namespace, notifier: h.Service, metrics_port: int,
                 channel: dict[str, Any]) -> dict[str, Any]:
    url = channel["notify_url"]
    address = url.split("/")[2]
    out: dict[str, Any] = {"baseline": await callbacks(url, channel, args.calls, "b")}
    # The crowd runs in a process of its own: its reconnects must not delay this
    # process's event loop, which times the callbacks.
    crowd = multiprocessing.Process(target=_crowd, args=(address, args.idle, args.seconds + 3),
                                    daemon=True)
    crowd.start()
    await asyncio.sleep(2.0)
    out["open_at_start"] = scrape(metrics_port).get("open", 0.0)
    began = time.monotonic()
    during: list[float] = []
    while time.monotonic() - began < args.seconds:
        during += await callbacks(url, channel, 5, f"d{len(during)}-")
    out["during"] = during
    out["metrics"] = scrape(metrics_port)
    crowd.join(10)

    fields = ["F"] * 200_000
    body = json.dumps(crm_body(channel, [str(10**15 + i) for i in range(1000)],
                               operation="update", affected_fields=fields),
                      separators=(",", ":")).encode()
    out["body_kib"] = len(body) / 1024
    out["rss_before"] = notifier.status_kib("VmRSS") / 1024
    async with httpx.AsyncClient(timeout=60) as http:
        began_ = time.perf_counter()
        answer = await http.post(url, content=body,
                                 headers={"Content-Type": "application/json"})
        out["refused_ms"] = 1000 * (time.perf_counter() - began_)
    out["refused_status"] = answer.status_code
    out["refused_text"] = answer.text[:120]
    out["rss_after"] = notifier.status_kib("VmRSS") / 1024
    out["hwm"] = notifier.status_kib("VmHWM") / 1024
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--calls", type=int, default=40, help="baseline callbacks")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * args.idle + 2048)), hard))
    metrics_port = 19900 + int(time.time()) % 90
    with h.services() as started, tempfile.TemporaryDirectory() as scratch:
        sandbox = h.Service("sandbox", {}, "--listen", "127.0.0.1:0")
        started.append(sandbox)
        broker = h.Service("broker", h.broker_env(sandbox.origin, f"sqlite:///{scratch}/b.db"))
        started.append(broker)
        notifier = h.Service("notifier", {
            "NOTIFIER_LISTEN": "127.0.0.1:0", "NOTIFIER_BROKER_TARGET": broker.address,
            "ZOHO_EXTRA_ORIGINS": sandbox.origin, "LOG_LEVEL": "WARNING",
            "NOTIFIER_DATABASE_URL": f"sqlite:///{scratch}/n.db",
            "NOTIFIER_METRICS_PORT": str(metrics_port),
            "NOTIFIER_INGRESS_MAX_CONNECTIONS": "4096"})
        started.append(notifier)
        channel = asyncio.run(h.demo_crm_subscription(sandbox.origin, broker.address,
                                                      notifier.address))
        out = asyncio.run(attack(args, notifier, metrics_port, channel))
        log_lines = len(notifier.stderr.splitlines())

    base, during = out["baseline"], out["during"]
    ratio = h.median(during) / h.median(base)
    report = h.Report(f"ingress under attack: {args.idle} idle connections, then one "
                      "expanding delivery", f"bench/ingress_hostile.py --idle {args.idle} "
                      f"--seconds {args.seconds:g}")
    report.row("", "callbacks", "p50", "p90", "max", "x baseline")
    report.row("baseline", len(base), f"{1000 * h.median(base):.1f} ms",
               f"{1000 * h.percentile(base, 90):.1f} ms", f"{1000 * max(base):.1f} ms", "1.00")
    report.row(f"{args.idle} idle held ({args.seconds:g} s)", len(during),
               f"{1000 * h.median(during):.1f} ms", f"{1000 * h.percentile(during, 90):.1f} ms",
               f"{1000 * max(during):.1f} ms", f"{ratio:.2f}")
    metrics = out["metrics"]
    report.row("ingress connections open", f"{out['open_at_start']:.0f} after 2 s, "
               f"{metrics.get('open', 0):.0f} at the end", "", "", "", "")
    report.row("closed by the notifier", ", ".join(
        f"{k} {v:.0f}" for k, v in sorted(metrics.items()) if k != "open") or "none",
        "", "", "", "")
    report.row(f"expanding delivery ({out['body_kib']:.0f} KiB)",
               f"{out['refused_status']} in {out['refused_ms']:.0f} ms", "", "", "", "")
    report.row("notifier RSS before / after / peak", f"{out['rss_before']:.0f} / "
               f"{out['rss_after']:.0f} / {out['hwm']:.0f} MB", "", "", "", "")
    report.row("notifier log lines (WARNING and up)", log_lines, "", "", "", "")
    report.target("every callback 200 while the idle connections are held", True,
                  f"{len(during)} of {len(during)}")
    report.target("callback p50 during <= 1.5x baseline", ratio <= 1.5, f"{ratio:.2f}x")
    report.target("the expanding delivery refused 413", out["refused_status"] == 413,
                  out["refused_text"])
    report.target("RSS flat (+20 MB at most)", out["rss_after"] - out["rss_before"] <= 20,
                  f"{out['rss_after'] - out['rss_before']:+.0f} MB")
    return 0 if report.print() else 1


if __name__ == "__main__":
    raise SystemExit(main())
