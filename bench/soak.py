"""Soak: a bounded run of mixed GetToken and ListNotifications load, with faults.

    .venv/bin/python bench/soak.py --minutes 10

Starts the sandbox, a broker (SQLite in a temporary directory) and a notifier as real
processes on loopback, connects a few users whose tokens live 400 s (so the broker
refreshes each in the background about every 100 s), then runs GetToken and
ListNotifications callers while a schedule injects faults into the sandbox:

- silent faults (Zoho's token endpoint failing, slow CRM pages, one CRM 500): callers
  must see no error at all, because tokens held are valid and retries absorb one 500;
- loud faults (CRM failing every attempt for a few seconds): ListNotifications may fail
  while the fault is on, with UNAVAILABLE, and never return a short list as complete.

At the end it prints requests served, faults injected, errors by code (split into
"during a loud fault" and "unexpected"), lists cut short, and the RSS of the broker and
the notifier at the start and at the end. Exit code 1 if anything unexpected happened.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from sandbox.control.client import SandboxControl
from sandbox.demo.tenant import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_SCOPES
from servicekit.sealing import new_key_spec
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.plugins.processes import ServiceProcess  # noqa: E402

DEMO_CRM_ITEMS = 250
TOKEN_LIFETIME = 400
# A call that overlaps a loud fault window (widened by this margin) may fail.
ATTRIBUTION_MARGIN = 1.5


# One process starter for tests and benchmarks; soak samples VmRSS through it.
Process = ServiceProcess


@dataclass
class Tally:
    served: Counter[str] = field(default_factory=Counter)
    expected_errors: Counter[str] = field(default_factory=Counter)
    unexpected_errors: Counter[str] = field(default_factory=Counter)
    short_lists: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    loud_windows: list[tuple[float, float]] = field(default_factory=list)

    def in_loud_fault(self, started: float, ended: float) -> bool:
        return any(
            started <= end + ATTRIBUTION_MARGIN and ended >= begin - ATTRIBUTION_MARGIN
            for begin, end in self.loud_windows
        )


# (route, kind, extra, seconds on, loud). Loud: may fail ListNotifications while on.
SCHEDULE = [
    ("token", "status_500", {}, 4.0, False),
    ("crm.watch", "latency", {"latency_ms": 300}, 4.0, False),
    ("crm.watch", "status_500", {"count": 1}, 0.0, False),
    ("token", "reset", {}, 4.0, False),
    ("crm.watch", "status_500", {}, 3.0, True),
    ("token", "hang", {"seconds": 3.0}, 4.0, False),
    ("crm.watch", "reset", {}, 3.0, True),
    ("token", "no_access_token", {}, 4.0, False),
]


async def inject_faults(control: SandboxControl, tally: Tally, stop_at: float,
                        every: float) -> None:
    step = 0
    while time.monotonic() + every < stop_at:
        await asyncio.sleep(every)
        route, kind, extra, seconds, loud = SCHEDULE[step % len(SCHEDULE)]
        step += 1
        begin = time.monotonic()
        if loud:
            tally.loud_windows.append((begin, begin + seconds))
        count = extra.get("count")
        args = {k: v for k, v in extra.items() if k != "count"}
        await control.fault(route, kind, count=count, **args)
        tally.faults[f"{route}:{kind}"] += 1
        if count is None:
            await asyncio.sleep(seconds)
            await control.clear_faults(route)
            if loud:
                tally.loud_windows[-1] = (begin, time.monotonic())


async def get_tokens(stub: broker_pb2_grpc.TokenBrokerServiceStub, users: list[str],
                     tally: Tally, stop_at: float, pause: float) -> None:
    i = 0
    while time.monotonic() < stop_at:
        user = users[i % len(users)]
        i += 1
        started = time.monotonic()
        try:
            reply = await stub.GetToken(broker_pb2.GetTokenRequest(
                user_id=user, app_type=common_pb2.APP_TYPE_CRM), timeout=10)
            assert reply.access_token
            tally.served["GetToken"] += 1
        except grpc.aio.AioRpcError as err:
            # Token faults are silent by design: a GetToken error is never expected.
            tally.unexpected_errors[f"GetToken:{err.code().name}"] += 1
        elapsed = time.monotonic() - started
        await asyncio.sleep(max(0.0, pause - elapsed))


async def list_notifications(stub: notifier_pb2_grpc.NotifierServiceStub, tally: Tally,
                             stop_at: float, pause: float) -> None:
    request = notifier_pb2.ListNotificationsRequest(
        user_id="demo", app_type=common_pb2.APP_TYPE_CRM)
    while time.monotonic() < stop_at:
        started = time.monotonic()
        items = 0
        try:
            async for _ in stub.ListNotifications(request, timeout=20):
                items += 1
            if items == DEMO_CRM_ITEMS:
                tally.served["ListNotifications"] += 1
            else:
                tally.short_lists += 1
        except grpc.aio.AioRpcError as err:
            key = f"ListNotifications:{err.code().name}"
            if tally.in_loud_fault(started, time.monotonic()):
                tally.expected_errors[key] += 1
            else:
                tally.unexpected_errors[key] += 1
        await asyncio.sleep(pause)


async def sample_rss(processes: dict[str, Process], samples: list[dict[str, int]],
                     stop_at: float, every: float) -> None:
    while time.monotonic() < stop_at:
        await asyncio.sleep(min(every, max(0.0, stop_at - time.monotonic())))
        samples.append({name: p.status_kib("VmRSS") for name, p in processes.items()})


async def soak(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="zoho-soak-"))
    started: list[Process] = []
    try:
        return await _soak(args, workdir, started)
    finally:
        for process in reversed(started):  # whatever failed, leave no process behind
            process.stop()


async def _soak(args: argparse.Namespace, workdir: Path, started: list[Process]) -> int:
    sandbox = Process("sandbox", {}, "--listen", "127.0.0.1:0")
    started.append(sandbox)
    origin = f"http://{sandbox.address}"
    broker = Process("broker", {
        "BROKER_LISTEN": "127.0.0.1:0",
        "BROKER_DATABASE_URL": f"sqlite:///{workdir}/broker.db",
        "BROKER_ENCRYPTION_KEY": new_key_spec("soak"),
        "ZOHO_CLIENT_ID": DEMO_CLIENT_ID, "ZOHO_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "ZOHO_EXTRA_ORIGINS": origin, "BROKER_ZOHO_TIMEOUT_SECONDS": "2",
        "LOG_LEVEL": "ERROR",
    })
    started.append(broker)
    notifier = Process("notifier", {
        "NOTIFIER_LISTEN": "127.0.0.1:0", "NOTIFIER_BROKER_TARGET": broker.address,
        "ZOHO_EXTRA_ORIGINS": origin, "NOTIFIER_ZOHO_BACKOFF_SECONDS": "0.05",
        "NOTIFIER_HEALTH_INTERVAL_SECONDS": "1", "LOG_LEVEL": "ERROR",
    })
    started.append(notifier)
    processes = {"broker": broker, "notifier": notifier}
    tally = Tally()
    samples: list[dict[str, int]] = []
    try:
        async with SandboxControl(origin) as control, \
                grpc.aio.insecure_channel(broker.address) as broker_channel, \
                grpc.aio.insecure_channel(notifier.address) as notifier_channel:
            brokers = broker_pb2_grpc.TokenBrokerServiceStub(broker_channel)
            notifiers = notifier_pb2_grpc.NotifierServiceStub(notifier_channel)
            users = ["demo"] + [f"soak{i}" for i in range(args.users - 1)]
            refresh_tokens: dict[str, str] = {}
            for user in users:
                refresh = await control.add_refresh_token(user=user, lifetimes=[TOKEN_LIFETIME])
                refresh_tokens[user] = refresh
                await brokers.CreateConnection(broker_pb2.CreateConnectionRequest(
                    user_id=user, accounts_server=origin, api_domain=origin,
                    refresh_token=refresh, scopes=list(DEMO_SCOPES)), timeout=10)
            # Warm up, then take the starting RSS.
            warm_until = time.monotonic() + 10
            await asyncio.gather(
                get_tokens(brokers, users, Tally(), warm_until, 0.01),
                list_notifications(notifiers, Tally(), warm_until, 0.1),
            )
            samples.append({name: p.status_kib("VmRSS") for name, p in processes.items()})
            started = time.monotonic()
            stop_at = started + args.minutes * 60
            await asyncio.gather(
                inject_faults(control, tally, stop_at, args.fault_every),
                sample_rss(processes, samples, stop_at, 30),
                *(get_tokens(brokers, users, tally, stop_at, args.get_token_pause)
                  for _ in range(args.token_callers)),
                *(list_notifications(notifiers, tally, stop_at, args.list_pause)
                  for _ in range(args.list_callers)),
            )
            await control.clear_faults()
            elapsed = time.monotonic() - started
            mints = {u: await control.mint_count(r) for u, r in refresh_tokens.items()}
    finally:
        codes = {name: p.stop() for name, p in [("notifier", notifier), ("broker", broker),
                                                 ("sandbox", sandbox)]}
        started.clear()
    report = {
        "seconds": round(elapsed, 1),
        "served": dict(tally.served),
        "faults_injected": dict(tally.faults),
        "errors_during_loud_faults": dict(tally.expected_errors),
        "unexpected_errors": dict(tally.unexpected_errors),
        "short_lists": tally.short_lists,
        "zoho_mints_per_user": mints,
        "rss_kib_start": samples[0],
        "rss_kib_end": samples[-1],
        "rss_kib_samples": samples,
        "exit_codes": codes,
    }
    print(json.dumps(report, indent=2))
    ok = not tally.unexpected_errors and tally.short_lists == 0 and \
        all(code == 0 for code in codes.values())
    print("soak: OK" if ok else "soak: FAILED", file=sys.stderr)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=5)
    parser.add_argument("--token-callers", type=int, default=4)
    parser.add_argument("--get-token-pause", type=float, default=0.02)
    parser.add_argument("--list-callers", type=int, default=2)
    parser.add_argument("--list-pause", type=float, default=0.2)
    parser.add_argument("--fault-every", type=float, default=12.0)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(soak(parser.parse_args()))
    return 130


if __name__ == "__main__":
    sys.exit(main())
