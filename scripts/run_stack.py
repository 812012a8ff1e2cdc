"""`make run`: the whole stack on this machine, with the sandbox standing in for Zoho.

    python scripts/run_stack.py start   # sandbox, broker (SQLite), notifier; connect; stream;
                                        # subscribe (CRM + Desk), change records, watch events
    python scripts/run_stack.py stop

Processes run in the background with their logs and pids in .run/, so the stack
stays up for grpcurl after this script exits. Addresses are the contract's defaults
(docs/contract.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
RUN = ROOT / ".run"
SANDBOX = "127.0.0.1:8780"
BROKER = "127.0.0.1:50051"
NOTIFIER = "127.0.0.1:50052"
INGRESS = "127.0.0.1:8781"
ORIGIN = f"http://{SANDBOX}"
# The demo grant has only Desk's read scopes; live events need the write ones too, and
# change capture the records' read scopes (servicekit/scopes.py).
SUBSCRIBING_SCOPES = [
    "ZohoCRM.notifications.READ", "ZohoCRM.notifications.CREATE",
    "ZohoCRM.notifications.UPDATE", "ZohoCRM.notifications.DELETE",
    "ZohoCRM.modules.READ", "ZohoCRM.coql.READ", "ZohoCRM.settings.fields.READ",
    "Desk.basic.READ", "Desk.webhooks.READ", "Desk.webhooks.CREATE", "Desk.webhooks.DELETE",
    "Desk.tickets.READ", "Desk.contacts.READ", "Desk.search.READ",
]

ENV = {
    "SANDBOX_LISTEN": SANDBOX,
    "BROKER_LISTEN": BROKER,
    "BROKER_DATABASE_URL": f"sqlite:///{RUN}/broker.db",
    "ZOHO_CLIENT_ID": "1000.SANDBOX",
    "ZOHO_CLIENT_SECRET": "sandbox-secret",
    "ZOHO_EXTRA_ORIGINS": ORIGIN,
    "NOTIFIER_LISTEN": NOTIFIER,
    "NOTIFIER_BROKER_TARGET": BROKER,
    "NOTIFIER_DATABASE_URL": f"sqlite:///{RUN}/notifier.db",
    "NOTIFIER_INGRESS_LISTEN": INGRESS,
    # The demo reads changes back every 5 s (production: 900) and leaves the newest 5 s
    # unread (default 10), so a dropped callback is seen recovered while you watch.
    "NOTIFIER_SWEEP_SECONDS": "5",
    "NOTIFIER_CAPTURE_SETTLE_SECONDS": "5",
}
SERVICES = [("sandbox", SANDBOX), ("broker", BROKER), ("notifier", NOTIFIER)]


def start_one(name: str, address: str) -> None:
    pidfile = RUN / f"{name}.pid"
    if pidfile.exists() and _alive(int(pidfile.read_text())):
        print(f"{name} already running (pid {pidfile.read_text().strip()})")
        return
    # Handed to the child, which keeps them open after this script exits.
    log = open(RUN / f"{name}.log", "ab")
    stdout = open(RUN / f"{name}.out", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", name], cwd=ROOT, env={**os.environ, **ENV},
        stdout=stdout, stderr=log, start_new_session=True,
    )
    pidfile.write_text(str(process.pid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{name} exited with {process.returncode}; see {RUN / (name + '.log')}")
        if (RUN / f"{name}.out").read_text().startswith("listening on"):
            print(f"{name:9s} listening on {address}  (log: .run/{name}.log)")
            return
        time.sleep(0.1)
    sys.exit(f"{name} did not start in 30 s; see {RUN / (name + '.log')}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


async def demo() -> None:
    from sandbox.control.client import SandboxControl
    from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
    from zoho.common.v1 import common_pb2
    from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

    async with SandboxControl(ORIGIN) as control:
        # A grant of the demo user with the scopes subscriptions need (a sandbox value).
        refresh_token = await control.add_refresh_token(scopes=SUBSCRIBING_SCOPES)
    async with grpc.aio.insecure_channel(BROKER) as channel:
        broker = broker_pb2_grpc.TokenBrokerServiceStub(channel)
        connection = await broker.CreateConnection(broker_pb2.CreateConnectionRequest(
            user_id="demo", accounts_server=ORIGIN, api_domain=ORIGIN,
            refresh_token=refresh_token, scopes=SUBSCRIBING_SCOPES,
        ), timeout=15)
        print(f"\nconnected user 'demo' at {connection.api_domain}; scopes: "
              f"{', '.join(connection.scopes)}")
    async with grpc.aio.insecure_channel(NOTIFIER) as channel:
        notifier = notifier_pb2_grpc.NotifierServiceStub(channel)
        for app, label in ((common_pb2.APP_TYPE_CRM, "CRM channels"),
                           (common_pb2.APP_TYPE_DESK, "Desk webhooks")):
            count = 0
            stream = notifier.ListNotifications(
                notifier_pb2.ListNotificationsRequest(user_id="demo", app_type=app), timeout=30
            )
            async for item in stream:
                count += 1
                if count <= 3:
                    body = item.crm if item.HasField("crm") else item.desk
                    print("  ", " ".join(str(body).split())[:110])
            print(f"streamed {count} {label}\n")
        await live_events(notifier)


async def live_events(notifier: object) -> None:
    """A CRM and a Desk subscription for the demo user, records changed, events watched."""
    from live_demo import change_records

    from zoho.common.v1 import common_pb2
    from zoho.notifier.v1 import notifier_pb2

    stub: Any = notifier
    crm = await stub.CreateSubscription(notifier_pb2.CreateSubscriptionRequest(
        user_id="demo", app_type=common_pb2.APP_TYPE_CRM, events=["Leads.all"]), timeout=15)
    desk = await stub.CreateSubscription(notifier_pb2.CreateSubscriptionRequest(
        user_id="demo", app_type=common_pb2.APP_TYPE_DESK, events=["Ticket_Add", "Ticket_Update"]),
        timeout=15)
    print(f"subscribed: CRM {crm.subscription_id} (channel {crm.zoho_id}), "
          f"Desk {desk.subscription_id} (webhook {desk.zoho_id})")
    watch = stub.WatchNotifications(notifier_pb2.WatchNotificationsRequest(user_id="demo"))
    await watch.initial_metadata()
    sent = await change_records(ORIGIN)
    print(f"changed {sent} records; WatchNotifications streams:")
    received = 0
    async for event in watch:
        app = "CRM " if event.app_type == common_pb2.APP_TYPE_CRM else "Desk"
        print(f"   {event.cursor}  {app} {event.module}.{event.operation} {event.record_id}"
              f"  fields={list(event.affected_fields)}")
        received += 1
        if received == sent:
            break
    watch.cancel()
    await recovered_change(stub, crm.zoho_id)


async def recovered_change(stub: Any, channel_id: str) -> None:
    """A Lead created while Zoho's callback is lost (the sandbox drops it, as Zoho drops
    some silently and never retries): change capture reads it back within a sweep."""
    from live_demo import create_lead_unheard

    from zoho.notifier.v1 import notifier_pb2

    watch = stub.WatchNotifications(notifier_pb2.WatchNotificationsRequest(user_id="demo"))
    await watch.initial_metadata()
    record_id = await create_lead_unheard(ORIGIN, channel_id)
    print(f"created Lead {record_id}; its callback was dropped. Reading it back (sweep 5 s):")
    try:
        async with asyncio.timeout(60):
            async for event in watch:
                if event.record_id == record_id:
                    origin = notifier_pb2.EventOrigin.Name(event.origin)
                    print(f"   {event.cursor}  CRM  {event.module}.{event.operation} "
                          f"{event.record_id}  origin={origin}")
                    break
    except TimeoutError:
        print("   not read back within 60 s: see .run/notifier.log")
    watch.cancel()


TRY_NEXT = f"""The stack is running (stop it with `make stop`). Try:

  # live events of the demo user, from the earliest retained (Ctrl-C to stop)
  grpcurl -plaintext -d '{{"user_id": "demo", "from_earliest": true}}' \\
      {NOTIFIER} zoho.notifier.v1.NotifierService/WatchNotifications

  grpcurl -plaintext {BROKER} list
  grpcurl -plaintext -d '{{"user_id": "demo", "app_type": "APP_TYPE_CRM"}}' \\
      {BROKER} zoho.broker.v1.TokenBrokerService/GetToken
  grpcurl -plaintext -d '{{"user_id": "demo", "app_type": "APP_TYPE_DESK"}}' \\
      {NOTIFIER} zoho.notifier.v1.NotifierService/ListNotifications
  grpcurl -plaintext -d '{{"user_id": "nobody", "app_type": "APP_TYPE_CRM"}}' \\
      {NOTIFIER} zoho.notifier.v1.NotifierService/ListNotifications

(grpcurl is in .venv/bin: `source .venv/bin/activate` first.)"""


def start() -> None:
    RUN.mkdir(exist_ok=True)
    for name, address in SERVICES:
        start_one(name, address)
    asyncio.run(demo())
    print(TRY_NEXT)


def stop() -> None:
    for name, _ in reversed(SERVICES):
        pidfile = RUN / f"{name}.pid"
        if not pidfile.exists():
            continue
        pid = int(pidfile.read_text())
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not _alive(pid):
                    break
                time.sleep(0.1)
            print(f"stopped {name}")
        pidfile.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop"])
    args = parser.parse_args()
    start() if args.action == "start" else stop()


if __name__ == "__main__":
    main()
