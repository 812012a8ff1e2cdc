"""The keeper over simulated weeks, on PostgreSQL with two notifier replicas: lapses,
renewals per channel per due time (counted from the PUTs the sandbox received),
concurrency of the keeper's Zoho calls, a replica SIGKILLed while holding leases, and
channels deleted behind the notifier's back restored within one reconcile period.

The sandbox's clock is moved a step at a time; the notifiers follow it
(NOTIFIER_KEEPER_CLOCK_URL), and each step waits until nothing is due or leased.

    .venv/bin/python bench/keeper.py [--subscriptions 10000] [--users 500] [--days 14]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import time
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h
import grpc
from sqlalchemy import func, or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from notifier.app_types import CRM
from notifier.database.models import EventRow, SubscriptionRow
from notifier.keeper.models import KeeperSubscription, KeeperUser
from tests.integration.stack import free_port
from tests.plugins.live_fixtures import SUBSCRIBING_SCOPES
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

DAY = 86400
TTL = 604800
RENEW_BEFORE = 172800
CRM_LIMITS = "Free 5, Standard 10, Professional 15, Enterprise 20"


def _metric(port: int, name: str) -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    except OSError:
        return float("nan")
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


class Run:
    def __init__(self, args: argparse.Namespace, url: str) -> None:
        self.args = args
        # Another session's PostgreSQL maintenance may end connections: reconnect.
        self.engine = create_async_engine(url, pool_pre_ping=True)
        self.puts: dict[str, list[float]] = defaultdict(list)
        self.lapses = 0

    async def collect(self, control: Any) -> None:
        """The sandbox keeps 100,000 call records: read and clear them as we go."""
        for call in await control.calls("crm.watch"):
            if call.method in ("PUT", "PATCH") and call.channel_ids:
                for channel in call.channel_ids:
                    self.puts[channel].append(call.at)
        await control.clear_calls()

    async def busy(self, now: datetime, dead_pid: int) -> int:
        """Renewals and reconciles due or leased, but for the leases of a dead replica (they
        only end when they expire)."""
        k, u = KeeperSubscription, KeeperUser
        dead = f"%:{dead_pid}:%"
        async with self.engine.connect() as conn:
            due = (await conn.execute(
                select(func.count()).select_from(k).join(SubscriptionRow,
                                                         SubscriptionRow.id == k.subscription_id)
                .where(or_(k.renew_at <= now, k.lease_until.is_not(None)),
                       or_(k.lease_owner.is_(None), k.lease_owner.not_like(dead)),
                       SubscriptionRow.status.in_(("active", "failing"))))).scalar() or 0
            users = (await conn.execute(
                select(func.count()).select_from(u).where(
                    or_(u.reconcile_at <= now, u.lease_until.is_not(None)),
                    or_(u.lease_owner.is_(None), u.lease_owner.not_like(dead))))).scalar() or 0
        return int(due) + int(users)

    async def expired(self, now: datetime) -> int:
        s = SubscriptionRow
        async with self.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(s).where(
                s.app_type == CRM, s.status != "deleted", s.expires_at <= now))).scalar() or 0)

    async def leases_of(self, pid: int) -> tuple[int, int]:
        """(renewal leases, per-user reconcile leases) the replica holds."""
        k, u = KeeperSubscription, KeeperUser
        owner = f"%:{pid}:%"
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(func.count()).select_from(k).where(
                k.lease_owner.like(owner)))).scalar() or 0
            users = (await conn.execute(select(func.count()).select_from(u).where(
                u.lease_owner.like(owner)))).scalar() or 0
        return int(rows), int(users)

    async def gaps(self) -> int:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(EventRow.event))).scalars().all()
        return sum(1 for blob in rows
                   if notifier_pb2.NotificationEvent.FromString(blob).operation == "gap")


async def create(stub: Any, users: list[str], count: int) -> list[notifier_pb2.Subscription]:
    made: list[notifier_pb2.Subscription] = []
    limit = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        async with limit:
            made.append(await stub.CreateSubscription(notifier_pb2.CreateSubscriptionRequest(
                user_id=users[i % len(users)], app_type=common_pb2.APP_TYPE_CRM,
                events=["Leads.all"]), timeout=60))

    await asyncio.gather(*(one(i) for i in range(count)))
    return made


def _doubles(puts: dict[str, list[float]]) -> tuple[int, int]:
    """(PUTs closer than half a renew cycle to the channel's previous one, max per due)."""
    cycle = (TTL - RENEW_BEFORE) / 2
    doubles, worst = 0, 0
    for times in puts.values():
        times.sort()
        run_len = 1
        for before, after in itertools.pairwise(times):
            if after - before < cycle:
                doubles += 1
                run_len += 1
            else:
                run_len = 1
            worst = max(worst, run_len)
        worst = max(worst, 1 if times else 0)
    return doubles, worst


async def run(args: argparse.Namespace) -> bool:
    report = h.Report("keeper: renewal and reconcile over simulated weeks",
                      " ".join(["bench/keeper.py", *sys.argv[1:]]))
    from notifier.database import DATABASE
    from sandbox.control.client import SandboxControl

    with h.postgres_database("bench_keeper") as url, h.services() as started:
        DATABASE.migrate(url)
        sandbox = h.Service("sandbox", {}, "--listen", "127.0.0.1:0")
        started.append(sandbox)
        benv = h.broker_env(sandbox.origin, url)
        # In this process, on the sandbox's clock: on wall time, each simulated day's
        # expired tokens would run into the per-connection mint budget (10 per 10 minutes).
        from broker.app import Broker
        from broker.config import BrokerConfig
        from servicekit.config import Env

        offset = [0.0]
        broker_app = Broker(
            BrokerConfig.from_env(Env(benv)),
            clock=lambda: datetime.fromtimestamp(time.time() + offset[0], UTC),
        )
        broker = argparse.Namespace(address=await broker_app.start(migrate=False))
        ports = [free_port(), free_port()]
        common = {
            "NOTIFIER_LISTEN": "127.0.0.1:0", "NOTIFIER_BROKER_TARGET": broker.address,
            "ZOHO_EXTRA_ORIGINS": sandbox.origin, "NOTIFIER_DATABASE_URL": url,
            "NOTIFIER_ENCRYPTION_KEY": benv["BROKER_ENCRYPTION_KEY"], "LOG_LEVEL": "ERROR",
            "NOTIFIER_KEEPER_CLOCK_URL": sandbox.origin + "/_sandbox/clock",
            "NOTIFIER_KEEPER_TICK_SECONDS": "0.1",
            "NOTIFIER_RECONCILE_SECONDS": str(args.reconcile),
            "NOTIFIER_KEEPER_LEASE_SECONDS": str(args.step * 2),
            "NOTIFIER_KEEPER_CONCURRENCY": str(args.concurrency),
            # Any --subscriptions/--users ratio: the per-user cap is not what is measured.
            "NOTIFIER_MAX_SUBSCRIPTIONS_PER_USER": "100000",
        }
        # Replicas share one public URL (as behind a load balancer): it is part of what a
        # channel must look like.
        ingress = [free_port(), free_port()]
        common["NOTIFIER_PUBLIC_URL"] = f"http://127.0.0.1:{ingress[0]}"
        replicas = [
            h.Service("notifier", {**common, "NOTIFIER_METRICS_PORT": str(port),
                                   "NOTIFIER_INGRESS_LISTEN": f"127.0.0.1:{listen}"})
            for port, listen in zip(ports, ingress, strict=True)
        ]
        started += replicas
        run_ = Run(args, url)
        async with SandboxControl(sandbox.origin) as control:
            users = [f"user{i:04d}" for i in range(args.users)]
            async with grpc.aio.insecure_channel(broker.address) as ch:
                bstub = broker_pb2_grpc.TokenBrokerServiceStub(ch)
                for user in users:
                    await control.add_user(user)
                    token = await control.add_refresh_token(user=user, scopes=SUBSCRIBING_SCOPES)
                    await bstub.CreateConnection(broker_pb2.CreateConnectionRequest(
                        user_id=user, accounts_server=sandbox.origin, refresh_token=token,
                        api_domain=sandbox.origin, scopes=SUBSCRIBING_SCOPES), timeout=30)
            channels = [grpc.aio.insecure_channel(r.address) for r in replicas]
            stubs = [notifier_pb2_grpc.NotifierServiceStub(c) for c in channels]
            t0 = time.monotonic()
            subs = await create(stubs[0], users, args.subscriptions)
            create_s = time.monotonic() - t0
            await control.clear_calls()
            by_user: dict[str, list[str]] = defaultdict(list)
            for sub in subs:
                by_user[sub.user_id].append(sub.zoho_id)
            steps = int(args.days * DAY / args.step)
            kill_step, delete_step = steps // 2, int(steps * 0.7)
            dead_pid, killed_leases, taken_over = 0, (0, 0), None
            deleted: dict[str, list[str]] = {}
            deleted_at = 0
            restored_after = None
            t0, slowest = time.monotonic(), 0.0
            for step in range(steps):
                offset[0] = await control.advance_clock(args.step) - time.time()
                if step >= kill_step and not dead_pid:
                    # SIGKILL replica A while it holds renewal leases (the first step from
                    # half-way on at which it does).
                    for _ in range(100):
                        killed_leases = await run_.leases_of(replicas[0].pid)
                        if any(killed_leases):
                            dead_pid = replicas[0].pid
                            replicas[0].kill()
                            kill_step = step
                            break
                        await asyncio.sleep(0.01)
                if step == delete_step:
                    for user in users[: max(1, len(users) // 10)]:
                        deleted[user] = by_user[user]
                        await stubs[1].DisableCrmChannels(notifier_pb2.DisableCrmChannelsRequest(
                            user_id=user, channel_ids=by_user[user]), timeout=30)
                    deleted_at = step
                settled = time.monotonic()
                await settle_without(run_, control, dead_pid)
                slowest = max(slowest, time.monotonic() - settled)
                if dead_pid and taken_over is None and not any(await run_.leases_of(dead_pid)):
                    taken_over = (step - kill_step) * args.step
                if deleted and restored_after is None and (step - deleted_at) * args.step >= min(
                        args.reconcile, args.step):
                    present = await _present(control, deleted)
                    if present == sum(len(v) for v in deleted.values()) or (
                            step - deleted_at) * args.step >= args.reconcile:
                        restored_after = ((step - deleted_at) * args.step, present)
                if step % 24 == 0:
                    await run_.collect(control)
                    print(f"day {step * args.step / DAY:.0f}: {time.monotonic() - t0:.0f} s, "
                          f"{sum(len(v) for v in run_.puts.values())} PUTs, "
                          f"{run_.lapses} lapsed, slowest settle {slowest:.1f} s",
                          file=sys.stderr, flush=True)
            sim_s = time.monotonic() - t0
            await run_.collect(control)
            missing = sum(len(v) for v in by_user.values()) - await _present(control, by_user)
            peaks = [_metric(p, "notifier_keeper_zoho_calls_in_flight_peak") for p in ports]
            gaps = await run_.gaps()
            for c in channels:
                await c.close()
        await broker_app.stop(0)
    doubles, worst = _doubles(run_.puts)
    renewals = sum(len(v) for v in run_.puts.values())
    n_deleted = sum(len(v) for v in deleted.values())
    report.row("figure", "value")
    report.row("subscriptions / users / simulated days",
               f"{args.subscriptions} / {args.users} / {args.days}")
    report.row("create all (s) / simulate (s) / slowest step's settle (s)",
               f"{create_s:.0f} / {sim_s:.0f} / {slowest:.1f}")
    report.row("renewal PUTs at Zoho", renewals)
    report.row("channels lapsed (expiry passed in our records) / missing at the end",
               f"{run_.lapses} / {missing}")
    report.row("PUTs closer than half a cycle to the previous (double renewals)", doubles)
    report.row("max renewals per channel per due time", worst)
    report.row("peak keeper calls in flight: A (killed) / B",
               f"{peaks[0]} / {peaks[1]} (limit per replica {args.concurrency}, one per user)")
    report.row("leases held by A when SIGKILLed (channels, users) / taken over after (sim s)",
               f"{killed_leases} / {taken_over}")
    report.row("deleted behind our back / back after (sim s, present)",
               f"{n_deleted} / {restored_after}")
    report.row("gap events", gaps)
    report.target("0 lapses", run_.lapses == 0 and missing == 0,
                  f"{run_.lapses} lapsed, {missing} missing")
    report.target("<= 1 renewal per channel per due time", worst <= 1 and doubles == 0,
                  f"max {worst}, {doubles} doubles")
    report.target("keeper concurrency within CRM's per-org limit",
                  max(peaks[1], 0) <= args.concurrency,
                  f"peak {peaks[1]} per replica, 1 per user per replica; {CRM_LIMITS}")
    report.target("SIGKILL: taken over within the lease", taken_over is not None
                  and taken_over <= 3 * args.step and any(killed_leases),
                  f"{killed_leases} leases, taken over after {taken_over} sim s "
                  f"(lease {2 * args.step} s, seen at step granularity {args.step} s)")
    report.target("deleted channels back within one reconcile period",
                  restored_after is not None and restored_after[1] == n_deleted
                  and restored_after[0] <= args.reconcile + args.step,
                  f"{restored_after} of {n_deleted}")
    return report.print()


async def settle_without(run: Run, control: Any, dead_pid: int) -> None:
    """Like settle(), but a dead replica's leases only end when they expire."""
    started = time.monotonic()
    now = datetime.fromtimestamp(await control.now(), UTC)
    pause = 0.02
    while time.monotonic() - started < 300:
        try:
            if await run.busy(now, dead_pid) <= 0:
                break
        except OperationalError:  # a connection ended under us: ask again
            pass
        await asyncio.sleep(pause)
        pause = min(0.2, pause * 1.5)
    run.lapses = max(run.lapses, await run.expired(now))


async def _present(control: Any, channels: dict[str, list[str]]) -> int:
    count = 0
    for user, ids in channels.items():
        live = {i["channel_id"] for i in await control.crm_channels(user)}
        count += sum(1 for i in ids if i in live)
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=10000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--days", type=float, default=14)
    parser.add_argument("--step", type=float, default=3600, help="simulated seconds a step")
    parser.add_argument("--reconcile", type=float, default=21600,
                        help="NOTIFIER_RECONCILE_SECONDS (simulated)")
    parser.add_argument("--concurrency", type=int, default=4)
    return 0 if asyncio.run(run(parser.parse_args())) else 1


if __name__ == "__main__":
    sys.exit(main())
