"""Sandbox reads under load: can the sandbox serve Zoho's read APIs fast enough that a change
capture benchmark reading tens of thousands of records is never limited by it?

    .venv/bin/python bench/sandbox_reads.py                  # 20,000 records, 5 s per phase
    .venv/bin/python bench/sandbox_reads.py --quick          # 4,000 records, 2 s per phase
    .venv/bin/python bench/sandbox_reads.py --records 50000 --seconds 10 --walkers 8

Processes: the sandbox (`python -m sandbox --demo-records 0 --demo-crm-items 0`) and this
script as the client. Phases:

1. bulk: `POST /_sandbox/changes/bulk` inserts `--records` Leads at sandbox times over the
   last day, then one bulk change of 10,000 updates (records only, and again with a
   callback per change made for one channel and dropped by a `drop` fault, so no sending
   is measured): the sandbox's own time for it and the round trip.
2. Get Records: `--walkers` clients each walk every record by page token (200 a page,
   sorted by Modified_Time, If-Modified-Since a day ago) for `--seconds`: pages served per
   second, and per second of the sandbox's CPU (the sandbox runs on one core).
3. COQL (only when sandbox/crm/coql/engine.py exists): pages of 2,000 by LIMIT/OFFSET, likewise.

Target: at least 300 Get Records pages of 200 a second per sandbox core.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h
import httpx

from sandbox.control.client import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_REFRESH_TOKEN,
    SandboxControl,
)

PAGES_TARGET = 300.0
BULK = 10_000


async def token_for(http: httpx.AsyncClient, origin: str) -> str:
    answer = await http.post(
        f"{origin}/oauth/v2/token",
        data={"grant_type": "refresh_token", "client_id": DEMO_CLIENT_ID,
              "client_secret": DEMO_CLIENT_SECRET, "refresh_token": DEMO_REFRESH_TOKEN},
    )  # fmt: skip
    return str(answer.json()["access_token"])


async def bulk_phase(
    sb: SandboxControl, pid: int, records: int
) -> list[tuple[str, float, float, float]]:
    now = await sb.now()
    rows = []
    # Callbacks are made but never sent: the cost measured is the sandbox's, not the network's.
    await sb.delivery_fault("drop", probability=1.0)
    for label, body in (
        (f"insert {records:,}", {"generate": {"count": records, "operation": "insert",
                                               "start": now - 86_000, "end": now - 600}}),
        (f"update {BULK:,}", {"generate": {"count": BULK, "operation": "update",
                                            "start": now - 500, "end": now - 100, "seed": 1},
                              "callbacks": False}),
        (f"update {BULK:,} + callbacks", {"generate": {"count": BULK, "operation": "update",
                                                        "start": now - 90, "end": now - 1,
                                                        "seed": 2}}),
    ):  # fmt: skip
        started, cpu_before = time.perf_counter(), h.cpu_seconds(pid)
        result = await sb.bulk_changes("crm", "Leads", **body)
        wall = (time.perf_counter() - started) * 1000
        cpu_ms = (h.cpu_seconds(pid) - cpu_before) * 1000
        rows.append((label, float(result["elapsed_ms"]), wall, cpu_ms))
    await sb.clear_deliveries()
    return rows


async def walk(http: httpx.AsyncClient, origin: str, token: str, until: float) -> int:
    since = datetime.fromtimestamp(time.time() - 90_000, UTC).isoformat()
    headers = {"Authorization": f"Zoho-oauthtoken {token}", "If-Modified-Since": since}
    params = {"fields": "Last_Name,Company,Email,Modified_Time", "per_page": "200",
              "sort_by": "Modified_Time", "sort_order": "asc"}  # fmt: skip
    pages, page_token = 0, None
    while time.monotonic() < until:
        query = {**params, "page_token": page_token} if page_token else params
        response = await http.get(f"{origin}/crm/v8/Leads", params=query, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"Get Records answered {response.status_code}: {response.text}")
        info = response.json()["info"]
        pages += 1
        page_token = info["next_page_token"] if info["more_records"] else None
    return pages


async def coql_walk(http: httpx.AsyncClient, origin: str, token: str, until: float) -> int:
    headers = {"Authorization": f"Zoho-oauthtoken {token}"}
    pages, offset = 0, 0
    while time.monotonic() < until:
        query = (
            "select Last_Name, Company, Modified_Time from Leads where Modified_Time is not null "
            f"order by Modified_Time asc, id asc limit 2000 offset {offset}"
        )
        response = await http.post(
            f"{origin}/crm/v8/coql", json={"select_query": query}, headers=headers
        )
        if response.status_code not in (200, 204):
            raise RuntimeError(f"COQL answered {response.status_code}: {response.text}")
        pages += 1
        more = response.status_code == 200 and response.json()["info"]["more_records"]
        offset = offset + 2000 if more and offset < 98_000 else 0
    return pages


async def read_phase(pid: int, origin: str, token: str, walkers: int, seconds: float,
                     reader: object) -> tuple[float, float, float]:  # fmt: skip
    limits = httpx.Limits(max_connections=walkers, max_keepalive_connections=walkers)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        cpu_before, started = h.cpu_seconds(pid), time.monotonic()
        until = started + seconds
        counts = await asyncio.gather(*(reader(http, origin, token, until) for _ in range(walkers)))  # type: ignore[operator]
        elapsed = time.monotonic() - started
        cpu = h.cpu_seconds(pid) - cpu_before
    pages = float(sum(counts))
    return pages / elapsed, pages / max(cpu, 1e-9), cpu / elapsed


async def main(args: argparse.Namespace) -> bool:
    records = 4_000 if args.quick else args.records
    seconds = 2.0 if args.quick else args.seconds
    report = h.Report(
        "sandbox reads: Get Records / COQL pages a second, bulk change cost",
        "bench/sandbox_reads.py " + " ".join(sys.argv[1:]),
    )
    report.row(
        "phase", "sandbox ms / pages a s", "round trip ms / pages a CPU s", "sandbox CPU (use)"
    )
    with h.services() as started:
        sandbox = h.Service(
            "sandbox", {}, "--listen", "127.0.0.1:0", "--demo-records", "0", "--demo-crm-items", "0"
        )
        started.append(sandbox)
        pid = sandbox.proc.pid
        async with SandboxControl(sandbox.origin, timeout=300) as sb:
            await sb.seed_crm_channels(
                items=[{"channel_id": "8000001", "events": ["Leads.all"],
                        "notify_url": "http://127.0.0.1:9/closed", "token": "t"}],
                replace=True,
            )  # fmt: skip
            for label, server_ms, wall_ms, cpu_ms in await bulk_phase(sb, pid, records):
                report.row(f"bulk {label}", server_ms, wall_ms, f"{cpu_ms:.0f} ms")
            async with httpx.AsyncClient() as http:
                token = await token_for(http, sandbox.origin)
            rate, per_cpu, cpu = await read_phase(
                pid, sandbox.origin, token, args.walkers, seconds, walk
            )
            report.row("Get Records, pages of 200", rate, per_cpu, f"{cpu * 100:.0f}%")
            report.target(
                f"at least {PAGES_TARGET:.0f} pages of 200 a second on one core",
                per_cpu >= PAGES_TARGET,
                f"{per_cpu:.0f} pages per sandbox CPU second ({rate:.0f}/s wall)",
            )
            if importlib.util.find_spec("sandbox.crm.coql.engine") is None:
                report.row("COQL, pages of 2,000", "skipped: no sandbox/crm/coql/engine.py", "", "")
            else:
                rate, per_cpu, cpu = await read_phase(
                    pid, sandbox.origin, token, args.walkers, seconds, coql_walk
                )
                report.row("COQL, pages of 2,000", rate, per_cpu, f"{cpu * 100:.0f}%")
    return report.print()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000, help="Leads to read")
    parser.add_argument("--seconds", type=float, default=5.0, help="per read phase")
    parser.add_argument("--walkers", type=int, default=4, help="concurrent readers")
    parser.add_argument("--quick", action="store_true")
    sys.exit(0 if asyncio.run(main(parser.parse_args())) else 1)
