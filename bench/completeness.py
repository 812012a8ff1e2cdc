"""Complete change capture under chaos (issue 25): two notifier replicas on PostgreSQL, the
sandbox's clock moving, callbacks dropped at random, a window in which every callback fails,
a replica SIGKILLed and restarted, a channel deleted behind the notifier's back for an hour.
At the end a mirror built only from WatchNotifications is compared with the sandbox's records
(missing, stale, phantom), beside a callbacks-only mirror (what the field's push-only
integrations hold) and the credits a 5-minute If-Modified-Since poller would spend.

    .venv/bin/python bench/completeness.py                      # small: 5 users, 1,000 changes
    .venv/bin/python bench/completeness.py --users 50 --changes 20000 --desk-users 10 \\
        --minutes 240                                           # the issue's full run
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h
import grpc
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from notifier.capture.models import CaptureCursor, CreditSpend
from tests.integration.stack import free_port
from tests.plugins.live_fixtures import SUBSCRIBING_SCOPES
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2 as pb
from zoho.notifier.v1 import notifier_pb2_grpc

CRM_MODULES = ("Leads", "Contacts", "Deals")
DESK_EVENTS = ("Ticket_Add", "Ticket_Update", "Ticket_Delete")
MATCH = 2.0  # events/dedupe.py MATCH_SECONDS
POLL = 300  # the peers' If-Modified-Since poller: every 5 minutes


class Clock:
    """Sandbox time at a wall time: the offset in effect after each clock move."""

    def __init__(self) -> None:
        self.moves: list[tuple[float, float]] = []

    def note(self, sandbox_now: float) -> None:
        self.moves.append((time.time(), sandbox_now - time.time()))

    def sandbox_at(self, wall: float) -> float:
        offset = self.moves[0][1]
        for at, moved in self.moves:
            if at <= wall:
                offset = moved
        return wall + offset


def _kind(op: str) -> str:
    if op in ("create", "edit", "delete"):
        return op
    return {"Add": "create", "Update": "edit", "Delete": "delete"}.get(op.rsplit("_", 1)[-1], "")


class Mirror:
    """What a consumer applying the stream holds: per record, alive or not, and the latest
    change time it was told of."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str, str], tuple[bool, float]] = {}

    def apply(self, event: pb.NotificationEvent, at: float) -> None:
        key = (event.user_id, event.module, event.record_id)
        alive = _kind(event.operation) != "delete"
        if key not in self.records or at >= self.records[key][1] - MATCH:
            self.records[key] = (alive, max(at, self.records.get(key, (True, 0.0))[1]))


def _when(event: pb.NotificationEvent) -> float:
    known = event.HasField("record_modified_time")
    stamp = event.record_modified_time if known else event.event_time
    return stamp.seconds + stamp.nanos / 1e9


def _reads(ports: list[int]) -> dict[str, float]:
    """notifier_capture_reads_total by cause/outcome, summed over the replicas."""
    import urllib.request

    totals: dict[str, float] = defaultdict(float)
    for port in ports:
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        except OSError:
            continue
        for line in text.decode().splitlines():
            if line.startswith("notifier_capture_reads_total{"):
                labels, value = line.rsplit(" ", 1)
                cause = labels.split('cause="')[1].split('"')[0]
                outcome = labels.split('outcome="')[1].split('"')[0]
                totals[f"{cause}/{outcome}"] += float(value)
    return totals


async def _caught_up(engine: Any, now: float, limit: float) -> None:
    """Until no window is due or being read (at most `limit` wall seconds)."""
    deadline = time.monotonic() + limit
    at = datetime.fromtimestamp(now, UTC)
    while time.monotonic() < deadline:
        async with engine.connect() as conn:
            due = (await conn.execute(
                select(func.count()).select_from(CaptureCursor).where(
                    CaptureCursor.read_at <= at))).scalar_one()
        if not due:
            return
        await asyncio.sleep(0.2)


async def _connect(control: Any, broker: str, users: list[str], origin: str) -> None:
    async with grpc.aio.insecure_channel(broker) as ch:
        stub = broker_pb2_grpc.TokenBrokerServiceStub(ch)
        for user in users:
            if user != "demo":
                await control.add_user(user)
            token = await control.add_refresh_token(user=user, scopes=SUBSCRIBING_SCOPES)
            await stub.CreateConnection(broker_pb2.CreateConnectionRequest(
                user_id=user, accounts_server=origin, refresh_token=token, api_domain=origin,
                scopes=SUBSCRIBING_SCOPES), timeout=30)


async def _watch(stub: Any, events: list[pb.NotificationEvent], stop: asyncio.Event) -> None:
    call = stub.WatchNotifications(pb.WatchNotificationsRequest(from_earliest=True))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        async for event in call:
            events.append(event)
    except grpc.aio.AioRpcError:
        pass
    finally:
        stopper.cancel()


async def run(args: argparse.Namespace) -> bool:
    report = h.Report("complete change capture under chaos",
                      " ".join(["bench/completeness.py", *sys.argv[1:]]))
    from broker.app import Broker
    from broker.config import BrokerConfig
    from notifier.database import DATABASE
    from sandbox.control.client import SandboxControl
    from servicekit.config import Env

    rng = random.Random(args.seed)
    with h.postgres_database("bench_capture") as url, h.services() as started:
        DATABASE.migrate(url)
        sandbox = h.Service("sandbox", {}, "--listen", "127.0.0.1:0")
        started.append(sandbox)
        benv = h.broker_env(sandbox.origin, url)
        offset = [0.0]
        broker_app = Broker(BrokerConfig.from_env(Env(benv)),
                            clock=lambda: datetime.fromtimestamp(time.time() + offset[0], UTC))
        broker = await broker_app.start(migrate=False)
        ingress = [free_port(), free_port()]
        common = {
            "NOTIFIER_LISTEN": "127.0.0.1:0", "NOTIFIER_BROKER_TARGET": broker,
            "ZOHO_EXTRA_ORIGINS": sandbox.origin, "NOTIFIER_DATABASE_URL": url,
            "NOTIFIER_ENCRYPTION_KEY": benv["BROKER_ENCRYPTION_KEY"], "LOG_LEVEL": "ERROR",
            "NOTIFIER_KEEPER_CLOCK_URL": sandbox.origin + "/_sandbox/clock",
            "NOTIFIER_KEEPER_TICK_SECONDS": "0.2", "NOTIFIER_CAPTURE_TICK_SECONDS": "0.2",
            "NOTIFIER_RECONCILE_SECONDS": "3600",
            "NOTIFIER_SWEEP_SECONDS": str(args.sweep),
            "NOTIFIER_RECOVERY_CREDITS_PER_DAY": str(args.budget),
            # Leases are on the sandbox's clock, which runs a minute a second here.
            "NOTIFIER_CAPTURE_LEASE_SECONDS": str(args.step * 10),
            # Replicas share one public URL (one load balancer): A takes the callbacks.
            "NOTIFIER_PUBLIC_URL": f"http://127.0.0.1:{ingress[0]}",
        }

        metrics_ports = [free_port(), free_port()]

        def replica(i: int) -> Any:
            return h.Service("notifier", {**common, "NOTIFIER_INGRESS_LISTEN":
                                          f"127.0.0.1:{ingress[i]}",
                                          "NOTIFIER_METRICS_PORT": str(metrics_ports[i])})

        replicas = [replica(0), replica(1)]
        started += replicas
        clock = Clock()
        users = ["demo"] + [f"user{i:03d}" for i in range(args.users - 1)]
        desk_users = users[: args.desk_users][:1]  # the sandbox's demo Desk org
        async with SandboxControl(sandbox.origin) as control:
            await _connect(control, broker, users, sandbox.origin)
            stub_b = notifier_pb2_grpc.NotifierServiceStub(
                grpc.aio.insecure_channel(replicas[1].address))
            subs: dict[str, pb.Subscription] = {}
            for user in users:
                subs[user] = await stub_b.CreateSubscription(pb.CreateSubscriptionRequest(
                    user_id=user, app_type=common_pb2.APP_TYPE_CRM,
                    events=[f"{m}.all" for m in CRM_MODULES]), timeout=30)
            for user in desk_users:
                subs[user + ":desk"] = await stub_b.CreateSubscription(
                    pb.CreateSubscriptionRequest(user_id=user, app_type=common_pb2.APP_TYPE_DESK,
                                                 events=list(DESK_EVENTS)), timeout=30)
            events: list[pb.NotificationEvent] = []
            stop = asyncio.Event()
            watcher = asyncio.ensure_future(_watch(stub_b, events, stop))
            clock.note(await control.now())
            start = await control.now()
            engine = create_async_engine(url)
            await control.delivery_fault("drop", count=None, probability=args.drop, seed=args.seed)
            steps = int(args.minutes * 60 / args.step)
            per_step = max(1, args.changes // steps)
            outage = (steps // 4, steps // 4 + max(1, 600 // args.step))
            kill_at, delete_at = steps // 3, steps // 2
            polled: dict[tuple[str, str, int], int] = defaultdict(int)  # poller's view
            made = 0
            now = start
            for step in range(steps):
                if step == outage[0]:
                    await control.delivery_fault("drop", count=None, start=now,
                                                 end=now + (outage[1] - outage[0]) * args.step)
                if step == kill_at:
                    replicas[0].kill()
                if step == kill_at + 1:
                    replicas[0] = replica(0)
                    started.append(replicas[0])
                if step == delete_at:
                    victim = users[-1]
                    await stub_b.DisableCrmChannels(pb.DisableCrmChannelsRequest(
                        user_id=victim, channel_ids=[subs[victim].zoho_id]), timeout=30)
                share: dict[tuple[str, str, str], int] = defaultdict(int)
                for _ in range(min(per_step, args.changes - made)):
                    user = rng.choice(users)
                    if user in desk_users and rng.random() < 0.2:
                        share[(user, "desk", "tickets")] += 1
                    else:
                        share[(user, "crm", rng.choice(CRM_MODULES))] += 1
                # This step's changes spread over its minute, each group made at the clock's
                # now (as at Zoho: Modified_Time and the callback's server_time agree).
                tick = args.step / (len(share) + 1)
                for (user, app, module), count in share.items():
                    now = await control.advance_clock(tick)
                    await control.bulk_changes(app, module, generate={
                        "count": count, "operation": "mix", "start": now, "end": now,
                        "seed": rng.randrange(1 << 30)}, user=user if app == "crm" else None)
                    polled[(user, module, int((now - start) // POLL))] += count
                    made += count
                await control.wait_for_deliveries(30)
                now = await control.advance_clock(tick)
                offset[0] = now - time.time()
                clock.note(now)
                # Time is compressed 60-fold: let due read-backs happen before it moves on
                # (else a loaded host's lag of seconds reads as minutes of lateness).
                await _caught_up(engine, now, args.step_wait)
            # The end: one sweep and the settle margin later (in steps, as before: a jump
            # would count as lateness), everything is read back.
            for _ in range(math.ceil((args.sweep + 60) / args.step)):
                end = await control.advance_clock(args.step)
                offset[0] = end - time.time()
                clock.note(end)
                await _caught_up(engine, end, args.step_wait)
            deadline = time.monotonic() + args.drain_seconds
            while time.monotonic() < deadline:
                async with engine.connect() as conn:
                    behind = (await conn.execute(
                        select(func.count()).select_from(CaptureCursor)
                        .where(CaptureCursor.covered_until < datetime.fromtimestamp(end - 75, UTC))
                    )).scalar_one()
                if behind == 0:
                    break
                await asyncio.sleep(1)
            await asyncio.sleep(2)
            stop.set()
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            async with engine.connect() as conn:
                spent = dict((await conn.execute(
                    select(CreditSpend.org_key, func.sum(CreditSpend.credits))
                    .group_by(CreditSpend.org_key))).all())
            await engine.dispose()
            truth: dict[tuple[str, str, str], float] = {}
            for user in users:
                for module in CRM_MODULES:
                    view = await control.records("crm", module, user=user, full=True)
                    for record in view["records"]:
                        modified = datetime.fromisoformat(record["Modified_Time"]).timestamp()
                        if modified >= start:
                            truth[(user, module, record["id"])] = modified
            for user in desk_users:
                view = await control.records("desk", "tickets", full=True)
                for record in view["records"]:
                    modified = datetime.fromisoformat(
                        record["modifiedTime"].replace("Z", "+00:00")).timestamp()
                    if modified >= start:
                        truth[(user, "Ticket", record["id"])] = modified
            zoho_credits = {u: (await control.credits("crm", u))["used"] for u in users}
            reads = _reads(metrics_ports)
        await broker_app.stop(0)

    changes = [e for e in events if e.operation != "gap"]
    full, pushed = Mirror(), Mirror()
    for event in changes:
        full.apply(event, _when(event))
        if event.origin == pb.EVENT_ORIGIN_CALLBACK:
            pushed.apply(event, _when(event))

    def compare(mirror: Mirror) -> tuple[int, int, int, int]:
        """missing, stale, phantom; and Desk records deleted at Desk that the mirror still
        holds (Desk shows no deleted records to a read: counted apart)."""
        missing = stale = phantom = desk_unseen = 0
        for key, modified in truth.items():
            held = mirror.records.get(key)
            if held is None or not held[0]:
                missing += 1
            elif held[1] < modified - MATCH:
                stale += 1
        for key, (alive, at) in mirror.records.items():
            if alive and key not in truth and at >= start:
                if key[1] == "Ticket":
                    desk_unseen += 1
                else:
                    phantom += 1
        return missing, stale, phantom, desk_unseen

    m, s, p, desk_unseen = compare(full)
    cm, cs, cp, _ = compare(pushed)
    desk_recovered = sum(
        1 for e in changes
        if e.operation == "Ticket_Delete" and e.origin == pb.EVENT_ORIGIN_RECOVERED
    )
    recovered = [e for e in changes if e.origin == pb.EVENT_ORIGIN_RECOVERED]
    seen: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    doubles = 0
    for event in changes:
        key = (event.subscription_id, event.record_id, _kind(event.operation))
        at = _when(event)
        if (key[2] == "edit" and any(abs(at - t) <= MATCH for t in seen[key])) or (
                key[2] in ("create", "delete") and seen[key]):
            doubles += 1
        seen[key].append(at)
    late = sorted(
        ((clock.sandbox_at(e.received_time.seconds) - _when(e), e) for e in recovered),
        key=lambda pair: pair[0],
    )
    lateness = [seconds for seconds, _ in late]
    for seconds, e in late[-3:]:
        print(f"late: {seconds:.0f} s {e.user_id} {e.module} {e.operation} {e.record_id} "
              f"at {_when(e) - start:.0f} s into the run", file=sys.stderr)
    poller = sum(max(1, math.ceil(n / 200)) for n in polled.values())
    polls = len(users) * len(CRM_MODULES) * math.ceil((end - start) / POLL)
    poller_credits = poller + (polls - len(polled))
    ours_crm = sum(v for k, v in spent.items() if k.startswith("crm"))
    crm_recovered = sum(1 for e in recovered if e.app_type == common_pb2.APP_TYPE_CRM)
    report.row("measure", "value")
    report.row("changes made (CRM + Desk)", made)
    report.row("events streamed (callbacks / recovered / gap)",
               f"{len(changes) - len(recovered)} / {len(recovered)} / {len(events) - len(changes)}")
    report.row("mirror: missing / stale / phantom", f"{m} / {s} / {p}")
    report.row("callbacks-only mirror: missing / stale / phantom", f"{cm} / {cs} / {cp}")
    report.row("Desk deletes: recovered / not recoverable by a read (apart)",
               f"{desk_recovered} / {desk_unseen}")
    report.row("second copies of one change", f"{doubles} ({doubles / max(1, len(changes)):.2%})")
    report.row("recovered delivered after the change, p50 / p99 s (sandbox time)",
               f"{h.percentile(lateness, 50):.0f} / {h.percentile(lateness, 99):.0f}")
    for org, credits in sorted(spent.items()):
        report.row(f"credits spent by read-backs, {org}", credits)
    report.row("Zoho's count of credits (all calls, keeper too), max per org",
               max(zoho_credits.values()))
    report.row("read-backs by cause/outcome (both replicas; A's since its restart)",
               ", ".join(f"{k} {v:.0f}" for k, v in sorted(reads.items())))
    report.row("CRM records recovered per credit", f"{crm_recovered / max(1, ours_crm):.1f}")
    report.row("5-minute If-Modified-Since poller: credits (no deletes)", poller_credits)
    report.target("mirror equals Zoho", m == s == p == 0, f"{m} missing, {s} stale, {p} phantom")
    report.target("at most 1% duplicates", doubles <= 0.01 * max(1, len(changes)),
                  f"{doubles} of {len(changes)}")
    report.target("dropped changes within NOTIFIER_SWEEP_SECONDS + 60 s (p99)",
                  h.percentile(lateness, 99) <= args.sweep + 60 + args.step,
                  f"p99 {h.percentile(lateness, 99):.0f} s (steps of {args.step} s)")
    report.target("credits within the budget", all(v <= args.budget for v in spent.values()),
                  f"max {max(spent.values(), default=0)} of {args.budget} per org")
    return report.print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--desk-users", type=int, default=1)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=90, help="simulated (sandbox) time")
    parser.add_argument("--step", type=int, default=60, help="sandbox seconds per step")
    parser.add_argument("--drop", type=float, default=0.05)
    parser.add_argument("--sweep", type=float, default=900)
    parser.add_argument("--budget", type=int, default=5000)
    parser.add_argument("--drain-seconds", type=float, default=120)
    parser.add_argument("--step-wait", type=float, default=10,
                        help="wall seconds a step waits for due read-backs at most")
    parser.add_argument("--seed", type=int, default=25)
    args = parser.parse_args()
    return 0 if asyncio.run(run(args)) else 1


if __name__ == "__main__":
    sys.exit(main())
