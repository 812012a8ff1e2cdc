"""Token economy: how many access tokens Zoho mints while many callers race for them.

    .venv/bin/python bench/token_economy.py           # 120 s broker race, then 60 s SDK race
    .venv/bin/python bench/token_economy.py --quick   # 40 s and 30 s
    .venv/bin/python bench/token_economy.py --skip-sdk

A compressed hour: access tokens live LIFETIME s (12) instead of 3600, the broker's hard
window is 2 s and soft window 4 s (production: 120 / 300), and Zoho's 10-tokens-per-10-
minutes budget becomes 10 per WINDOW s (20) at the sandbox and in the broker. So a token is
in use for about LIFETIME - SOFT = 8 s and a 120 s run is ~15 "lifetimes" per connection.

Broker side: the sandbox, one PostgreSQL database, 3 broker processes (`python -m broker`),
100 connections (one sandbox refresh token each), and 1,000 callers in this process, caller i
asking broker i % 3 for connection i % 100, about once a second each. The sandbox counts
mints per refresh token; the callers keep every distinct access token they were handed.
"Exactly one mint per token lifetime" is checked three ways: every mint was handed out
(mints == distinct tokens seen, but for a background refresh still landing at the end), no
two mints of a connection closer than the time a token is in use, and mints per connection
against elapsed / (LIFETIME - SOFT).

SDK side: Zoho's official Python SDK (zohocrmsdk8-0) against the same sandbox settings, 16
threads sharing one user's token (one FileStore), each listing notifications in a loop while
the token expires every LIFETIME s. Counted: mints at the sandbox and failed calls.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h
import grpc
from grpc_status import rpc_status

from sandbox.control.client import SandboxControl
from sandbox.demo.tenant import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_SCOPES
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2

BROKERS = 3


def _reason(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    if status is not None:
        from google.rpc import error_details_pb2
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return f"{err.code().name}/{info.reason}"
    return err.code().name


async def broker_race(args: argparse.Namespace, sandbox_origin: str,
                      addresses: list[str]) -> dict:
    async with SandboxControl(sandbox_origin) as sandbox:
        await sandbox.reset()
        await sandbox.configure(mint_limit=10, mint_window_seconds=args.window)
        users = [f"bench{i:03d}" for i in range(args.connections)]
        refresh_tokens = {}
        for user in users:
            refresh_tokens[user] = await sandbox.add_refresh_token(
                user=user, lifetimes=[args.lifetime])
        channels = [grpc.aio.insecure_channel(a) for a in addresses]
        stubs = [broker_pb2_grpc.TokenBrokerServiceStub(c) for c in channels]
        created_at = {}
        for n, user in enumerate(users):
            await stubs[n % len(stubs)].CreateConnection(broker_pb2.CreateConnectionRequest(
                user_id=user, accounts_server=sandbox_origin,
                refresh_token=refresh_tokens[user], api_domain=sandbox_origin,
                scopes=list(DEMO_SCOPES)), timeout=10)
            created_at[user] = time.monotonic()

        seen: dict[str, set[str]] = collections.defaultdict(set)
        errors: collections.Counter[str] = collections.Counter()
        short: list[float] = []  # tokens handed out with less than the hard window left
        calls = 0
        latencies: list[float] = []
        # Latency of calls that brought back a token nobody had seen yet: these are the
        # ones that could have waited for a refresh.
        first_sight: list[float] = []
        lag: list[float] = []
        slow_at: list[float] = []  # when calls slower than 500 ms started (s into the race)
        began = time.monotonic()
        stop_at = time.monotonic() + args.seconds

        async def loop_lag() -> None:
            # How late this (client) process's event loop runs: a busy client inflates
            # every latency it measures.
            while time.monotonic() < stop_at:
                before = time.monotonic()
                await asyncio.sleep(0.05)
                lag.append(time.monotonic() - before - 0.05)

        async def caller(i: int) -> None:
            nonlocal calls
            user = users[i % len(users)]
            stub = stubs[i % len(stubs)]
            request = broker_pb2.GetTokenRequest(user_id=user, app_type=common_pb2.APP_TYPE_CRM)
            await asyncio.sleep(random.uniform(0, args.period))
            while time.monotonic() < stop_at:
                started = time.monotonic()
                try:
                    reply = await stub.GetToken(request, timeout=10)
                except grpc.aio.AioRpcError as err:
                    errors[_reason(err)] += 1
                else:
                    calls += 1
                    latency = time.monotonic() - started
                    latencies.append(latency)
                    if latency > 0.5:
                        slow_at.append(started - began)
                    if reply.access_token not in seen[user]:
                        first_sight.append(latency)
                    seen[user].add(reply.access_token)
                    left = reply.expires_at.ToDatetime(UTC) - datetime.now(UTC)
                    if left.total_seconds() < args.hard - 0.5:
                        short.append(left.total_seconds())
                await asyncio.sleep(random.uniform(0.5, 1.5) * args.period)

        await asyncio.gather(loop_lag(), *(caller(i) for i in range(args.callers)))
        ended = time.monotonic()
        for channel in channels:
            await channel.close()
        await asyncio.sleep(1.0)  # a background refresh started at the very end lands
        mints = {u: (await sandbox.mint_stats(rt)).minted_total
                 for u, rt in refresh_tokens.items()}
        outcomes = await sandbox.token_outcomes()
    return {"mints": mints, "seen": seen, "errors": errors, "short": short, "calls": calls,
            "latencies": latencies, "first_sight": first_sight, "slow_at": slow_at, "lag": lag,
            "elapsed": ended - began, "created_at": created_at, "ended": ended,
            "outcomes": outcomes}


def mint_gaps(database_url: str) -> dict[str, list[float]]:
    """Seconds between consecutive successful refreshes of each connection (audit table)."""
    from sqlalchemy import create_engine, text

    from broker.storage.tables import DATABASE
    engine = create_engine(DATABASE.sync_url(database_url))
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT user_id, created_at FROM zoho_refresh_audit "
            "WHERE outcome = 'success' ORDER BY user_id, created_at")).all()
    engine.dispose()
    by_user: dict[str, list[datetime]] = collections.defaultdict(list)
    for user, at in rows:
        by_user[user].append(at)
    return {u: [(b - a).total_seconds() for a, b in itertools.pairwise(ts)]
            for u, ts in by_user.items()}


# ---- Zoho's SDK ------------------------------------------------------------------------


def sdk_race(args: argparse.Namespace, sandbox_origin: str, tmp: Path) -> dict:
    from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken
    from zohocrmsdk.src.com.zoho.api.authenticator.store.file_store import FileStore
    from zohocrmsdk.src.com.zoho.api.logger import Logger
    from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter
    from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer
    from zohocrmsdk.src.com.zoho.crm.api.notifications import (
        GetNotificationsParam,
        NotificationsOperations,
        ResponseWrapper,
    )
    from zohocrmsdk.src.com.zoho.crm.api.parameter_map import ParameterMap
    from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig

    async def prepare() -> str:
        async with SandboxControl(sandbox_origin) as sandbox:
            await sandbox.reset(demo=True)
            await sandbox.configure(mint_limit=10, mint_window_seconds=args.window)
            rt = await sandbox.add_refresh_token(user="sdkuser", lifetimes=[args.lifetime])
            await sandbox.seed_crm_channels(user="sdkuser", count=10, modules=["Leads"])
            return rt

    refresh_token = asyncio.run(prepare())
    Initializer.initialize(
        environment=DataCenter.Environment(
            sandbox_origin, sandbox_origin + "/oauth/v2/token", sandbox_origin),
        token=OAuthToken(client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET,
                         refresh_token=refresh_token),
        store=FileStore(str(tmp / "tokens.csv")),
        sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=False),
        resource_path=str(tmp),
        logger=Logger(Logger.Levels.INFO, str(tmp / "sdk.log")),
    )
    failures: collections.Counter[str] = collections.Counter()
    ok = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + args.sdk_seconds

    def worker() -> None:
        operations = NotificationsOperations()
        while time.monotonic() < stop_at:
            params = ParameterMap()
            params.add(GetNotificationsParam.page, 1)
            params.add(GetNotificationsParam.per_page, 200)
            try:
                response = operations.get_notifications(params)
                status = response.get_status_code() if response is not None else None
                good = status == 200 and isinstance(response.get_object(), ResponseWrapper)
                kind = "ok" if good else f"HTTP {status}"
            except Exception as exc:  # the SDK raises SDKException and others
                kind = type(exc).__name__
            with lock:
                if kind == "ok":
                    ok[0] += 1
                else:
                    failures[kind] += 1
            time.sleep(random.uniform(0.5, 1.5) * args.sdk_period)

    began = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.sdk_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.sdk_seconds + 60)
    elapsed = time.monotonic() - began

    async def count() -> tuple[int, dict]:
        async with SandboxControl(sandbox_origin) as sandbox:
            stats = await sandbox.mint_stats(refresh_token)
            return stats.minted_total, await sandbox.token_outcomes()

    minted, outcomes = asyncio.run(count())
    return {"mints": minted, "ok": ok[0], "failures": failures, "elapsed": elapsed,
            "outcomes": outcomes}


# ---- report --------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 s broker race, 30 s SDK race")
    parser.add_argument("--seconds", type=float, default=120.0, help="broker race length")
    parser.add_argument("--callers", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--period", type=float, default=1.0,
                        help="mean seconds between one caller's calls")
    parser.add_argument("--lifetime", type=int, default=12, help="access token lifetime (s)")
    parser.add_argument("--hard", type=int, default=2, help="BROKER_REFRESH_WINDOW_SECONDS")
    parser.add_argument("--soft", type=int, default=4, help="BROKER_SOFT_REFRESH_SECONDS")
    parser.add_argument("--window", type=int, default=20,
                        help="Zoho's 10-token window, scaled (sandbox and broker)")
    parser.add_argument("--cache-seconds", type=float, default=1.0, help="BROKER_CACHE_SECONDS")
    parser.add_argument("--skip-sdk", action="store_true")
    parser.add_argument("--sdk-seconds", type=float, default=60.0)
    parser.add_argument("--sdk-threads", type=int, default=16)
    parser.add_argument("--sdk-period", type=float, default=0.2,
                        help="mean seconds between one SDK thread's calls")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.sdk_seconds = 40.0, 30.0

    report = h.Report(
        "token economy: mints per connection per token lifetime, 3 brokers vs Zoho's SDK",
        "bench/token_economy.py" + (" --quick" if args.quick else ""),
    )
    with tempfile.TemporaryDirectory() as tmp, h.services() as started:
        sandbox = h.Service("sandbox", {}, "--listen", "127.0.0.1:0")
        started.append(sandbox)
        with h.postgres_database("bench_economy") as url:
            env = h.broker_env(
                sandbox.origin, url,
                BROKER_REFRESH_WINDOW_SECONDS=str(args.hard),
                BROKER_SOFT_REFRESH_SECONDS=str(args.soft),
                BROKER_MINT_BUDGET="10",
                BROKER_MINT_BUDGET_WINDOW_SECONDS=str(args.window),
                BROKER_CACHE_SECONDS=str(args.cache_seconds),
            )
            brokers = [h.Service("broker", env) for _ in range(BROKERS)]
            started.extend(brokers)
            result = asyncio.run(broker_race(args, sandbox.origin, [b.address for b in brokers]))
            gaps = mint_gaps(url)
            for b in brokers:
                b.stop()
        sdk = None if args.skip_sdk else sdk_race(args, sandbox.origin, Path(tmp))

    in_use = args.lifetime - args.soft
    mints = result["mints"]
    # A perfect refresher mints when a token enters the soft window, and surely by the time
    # it enters the hard window: one mint per lifetime means a count between those two.
    span = {u: result["ended"] - t0 for u, t0 in result["created_at"].items()}
    expected = {u: 1 + int(t // in_use) for u, t in span.items()}
    fewest = {u: 1 + int(t // (args.lifetime - args.hard)) for u, t in span.items()}
    unseen = {u: mints[u] - len(result["seen"][u]) for u in mints}
    all_gaps = [g for gs in gaps.values() for g in gs]
    deviation = [mints[u] - expected[u] for u in mints]
    outside = [u for u in mints if not fewest[u] <= mints[u] <= expected[u] + 1]
    report.row("", "value")
    report.row("broker race", f"{result['elapsed']:.0f} s, {args.callers} callers, "
               f"{len(mints)} connections, {BROKERS} brokers, PostgreSQL")
    report.row("GetToken calls ok", f"{result['calls']} ({result['calls'] / result['elapsed']:.0f}"
               f"/s, p50 {1000 * h.percentile(result['latencies'], 50):.1f} ms, "
               f"p99 {1000 * h.percentile(result['latencies'], 99):.1f} ms)")
    report.row("calls returning a new token", f"{len(result['first_sight'])}, p50 "
               f"{1000 * h.percentile(result['first_sight'], 50):.1f} ms, p99 "
               f"{1000 * h.percentile(result['first_sight'], 99):.1f} ms")
    report.row("client event-loop lag", f"p50 {1000 * h.percentile(result['lag'], 50):.1f} ms,"
               f" p99 {1000 * h.percentile(result['lag'], 99):.1f} ms, "
               f"max {1000 * max(result['lag'], default=0):.1f} ms")
    buckets = collections.Counter(int(t // 5) * 5 for t in result["slow_at"])
    report.row("calls > 500 ms by start second", dict(sorted(buckets.items())) or 0)
    report.row("caller errors", dict(result["errors"]) or 0)
    report.row("tokens with < hard window left", len(result["short"]))
    report.row("mints total (sandbox)", f"{sum(mints.values())} (one per lifetime: "
               f"{sum(fewest.values())}..{sum(expected.values())}, i.e. 1 + elapsed // "
               f"{args.lifetime - args.hard}..{in_use} s per connection)")
    report.row("mints per connection", f"min {min(mints.values())} max {max(mints.values())} "
               f"mean {sum(mints.values()) / len(mints):.2f}; expected min "
               f"{min(expected.values())} max {max(expected.values())}")
    report.row("mints - (1 + elapsed // in-use)",
               f"{dict(sorted(collections.Counter(deviation).items()))}")
    report.row("mints never handed out", f"{sum(unseen.values())} "
               f"(connections: {sum(1 for v in unseen.values() if v > 0)})")
    report.row("gap between mints (s)", f"min {min(all_gaps):.2f} median "
               f"{h.median(all_gaps):.2f} max {max(all_gaps):.2f} (token in use {in_use} s)")
    report.row("sandbox token outcomes", result["outcomes"])
    if sdk is not None:
        sdk_expected = 1 + int(sdk["elapsed"] // (args.lifetime - 5))
        report.row("SDK race", f"{sdk['elapsed']:.0f} s, {args.sdk_threads} threads, one token "
                   f"store, SDK refreshes 5 s before expiry")
        report.row("SDK calls ok / failed", f"{sdk['ok']} / {sum(sdk['failures'].values())} "
                   f"{dict(sdk['failures'])}")
        report.row("SDK mints (sandbox)", f"{sdk['mints']} (one per lifetime would be "
                   f"{sdk_expected})")
        report.row("SDK token outcomes", sdk["outcomes"])

    report.target("no caller errors", not result["errors"], str(dict(result["errors"]) or 0))
    report.target("every token handed out had >= hard window left", not result["short"],
                  f"{len(result['short'])} short")
    # Each connection: mints within its range (+1 for a refresh landing at the end), never
    # two mints closer than half a token's time in use, and none never handed out but the last.
    report.target("one mint per connection per token lifetime",
                  not outside and min(all_gaps) >= in_use / 2 and max(unseen.values()) <= 1,
                  f"total {sum(mints.values())} in {sum(fewest.values())}.."
                  f"{sum(expected.values())}; {len(outside)} connection(s) outside their range; "
                  f"closest mints {min(all_gaps):.2f} s apart; "
                  f"{sum(unseen.values())} mint(s) not handed out")
    ok = report.print()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
