"""Scale: 10,000 connections in the table and 500 concurrent ListNotifications streams;
errors, and the peak RSS (VmHWM) of every process.

    .venv/bin/python bench/scale.py           # 10,000 connections, 500 streams
    .venv/bin/python bench/scale.py --quick   # 2,000 connections, 100 streams

Processes: the sandbox, one broker (`python -m broker`, PostgreSQL) and one notifier
(`python -m notifier`); this script is the client. The streamed users are real: a sandbox
refresh token each, imported with CreateConnection, 250 CRM watch items each (2 pages).
The rest of the table is written straight through
`broker.storage.connection_store.ConnectionStore.put` with the broker's key (encrypted like
any row). Targets: no errors, every stream complete, each
process's peak RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h
import grpc

from broker.storage.connection_store import ConnectionStore
from broker.storage.records import AuditEntry, NewConnection
from broker.storage.sealed_columns import load_key_ring
from broker.storage.tables import DATABASE
from sandbox.control.client import SandboxControl
from sandbox.demo.tenant import DEMO_SCOPES
from servicekit.sealing import new_key_spec
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

MAX_RSS_MB = 300


async def fill_table(url: str, key: str, sandbox_origin: str, count: int) -> float:
    store = ConnectionStore(DATABASE.make_async_engine(url),
                            load_key_ring(key, sqlite_path=None))
    began = time.monotonic()
    gate = asyncio.Semaphore(16)
    now = datetime.now(UTC)

    async def put(i: int) -> None:
        user = f"filler{i:06d}"
        async with gate:
            await store.put(
                NewConnection(user_id=user, access_token=f"1000.filler.{i}",
                              refresh_token=f"1000.filler-refresh.{i}",
                              token_expires_at=now + timedelta(hours=1),
                              api_domain=sandbox_origin, accounts_server=sandbox_origin,
                              scopes=list(DEMO_SCOPES), desk_org_id=""),
                now, AuditEntry(user_id=user, reason="import", outcome="success",
                                latency_ms=0, refresh_token_hash="-", replica="bench"))

    await asyncio.gather(*(put(i) for i in range(count)))
    await store.engine.dispose()
    return time.monotonic() - began


async def run(args: argparse.Namespace, sandbox_origin: str, broker: str, notifier: str,
              url: str, key: str, processes: dict[str, h.Service]) -> h.Report:
    users = [f"scale{i:04d}" for i in range(args.streams)]
    async with SandboxControl(sandbox_origin) as sandbox:
        await sandbox.reset()
        tokens = {}
        for user in users:
            tokens[user] = await sandbox.add_refresh_token(user=user)
            await sandbox.seed_crm_channels(user=user, count=250)
    channel = grpc.aio.insecure_channel(broker)
    stub = broker_pb2_grpc.TokenBrokerServiceStub(channel)
    gate = asyncio.Semaphore(16)

    async def connect(user: str) -> None:
        async with gate:
            await stub.CreateConnection(broker_pb2.CreateConnectionRequest(
                user_id=user, accounts_server=sandbox_origin, refresh_token=tokens[user],
                api_domain=sandbox_origin, scopes=list(DEMO_SCOPES)), timeout=30)

    await asyncio.gather(*(connect(u) for u in users))
    fill_seconds = await fill_table(url, key, sandbox_origin, args.connections - len(users))
    total_rows = await ConnectionStore(DATABASE.make_async_engine(url),
                                       load_key_ring(key, sqlite_path=None)).count()
    await channel.close()

    # 100 streams a connection, the notifier's default NOTIFIER_MAX_STREAMS_PER_PEER: a
    # channel of its own subchannel pool each, or they would share one connection.
    notifier_channels = [
        grpc.aio.insecure_channel(notifier, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(0, len(users), 100)]
    nstubs = [notifier_pb2_grpc.NotifierServiceStub(c) for c in notifier_channels]
    errors: collections.Counter[str] = collections.Counter()
    counts: list[int] = []
    durations: list[float] = []
    first_items: list[float] = []

    async def stream(user: str) -> None:
        started = time.monotonic()
        n = 0
        nstub = nstubs[users.index(user) // 100]
        try:
            async for _ in nstub.ListNotifications(notifier_pb2.ListNotificationsRequest(
                    user_id=user, app_type=common_pb2.APP_TYPE_CRM), timeout=120):
                if n == 0:
                    first_items.append(time.monotonic() - started)
                n += 1
        except grpc.aio.AioRpcError as err:
            errors[err.code().name] += 1
            return
        counts.append(n)
        durations.append(time.monotonic() - started)

    began = time.monotonic()
    await asyncio.gather(*(stream(u) for u in users))
    wall = time.monotonic() - began
    for notifier_channel in notifier_channels:
        await notifier_channel.close()

    report = h.Report(f"scale: {args.connections} connections, {args.streams} concurrent "
                      "ListNotifications streams", "bench/scale.py"
                      + (" --quick" if args.quick else ""))
    report.row("", "value")
    report.row("rows in zoho_connections", f"{total_rows} (filler written in "
               f"{fill_seconds:.1f} s)")
    report.row("streams", f"{len(counts)} complete, errors {dict(errors) or 0}")
    report.row("items streamed", f"{sum(counts)} ({min(counts, default=0)}.."
               f"{max(counts, default=0)} per stream)")
    report.row("wall time", f"{wall:.2f} s; per stream p50 {h.percentile(durations, 50):.2f} s "
               f"p99 {h.percentile(durations, 99):.2f} s; first item p50 "
               f"{1000 * h.percentile(first_items, 50):.0f} ms")
    peaks = {name: h.peak_rss_mb(p.pid) for name, p in processes.items()}
    import os
    peaks["client (this script)"] = h.peak_rss_mb(os.getpid())
    for name, mb in peaks.items():
        report.row(f"peak RSS {name}", f"{mb:.0f} MB")
    report.target("no errors, every stream complete",
                  not errors and len(counts) == len(users) and set(counts) == {250},
                  f"{len(counts)}/{len(users)} complete, errors {dict(errors) or 0}")
    report.target("10,000 rows" if not args.quick else f"{args.connections} rows",
                  total_rows >= args.connections, str(total_rows))
    servers = {k: v for k, v in peaks.items() if k in processes}
    report.target(f"peak RSS <= {MAX_RSS_MB} MB per process",
                  all(mb <= MAX_RSS_MB for mb in servers.values()),
                  ", ".join(f"{k} {v:.0f} MB" for k, v in servers.items()))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 connections, 100 streams")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--streams", type=int, default=500)
    args = parser.parse_args()
    if args.quick:
        args.connections, args.streams = 2000, 100
    key = new_key_spec("bench")
    with h.services() as started, h.postgres_database("bench_scale") as url:
        sandbox = h.Service("sandbox", {}, "--listen", "127.0.0.1:0")
        started.append(sandbox)
        broker = h.Service("broker", h.broker_env(sandbox.origin, url,
                                                  BROKER_ENCRYPTION_KEY=key))
        started.append(broker)
        notifier = h.Service("notifier", {
            "NOTIFIER_LISTEN": "127.0.0.1:0", "NOTIFIER_BROKER_TARGET": broker.address,
            "ZOHO_EXTRA_ORIGINS": sandbox.origin, "LOG_LEVEL": "WARNING"})
        started.append(notifier)
        report = asyncio.run(run(args, sandbox.origin, broker.address, notifier.address, url,
                                 key, {"sandbox": sandbox, "broker": broker,
                                       "notifier": notifier}))
        for service in reversed(started):
            service.stop()
    return 0 if report.print() else 1


if __name__ == "__main__":
    raise SystemExit(main())
