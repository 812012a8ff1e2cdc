"""The figures behind deploy/kubernetes/'s memory requests: the resident set (`ps -o rss`) of a
real broker, notifier and ingress-only notifier on PostgreSQL, idle and then after some
traffic (connections, GetToken, listings, subscriptions, callbacks stored, events watched).

    .venv/bin/python -m tests.ops.measure_rss [--users 20]

Needs PostgreSQL at TEST_POSTGRES_URL (default 127.0.0.1:5432, user postgres); makes a
database of its own and drops it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import uuid

import grpc
import httpx
import psycopg

from sandbox.control.client import SandboxControl
from sandbox.demo.tenant import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from tests.plugins.broker_fixtures import POSTGRES_ADMIN_URL, TEST_KEY
from tests.plugins.live_fixtures import SUBSCRIBING_SCOPES
from tests.plugins.processes import REPO_ROOT, ServiceProcess
from tests.plugins.zoho_callbacks import crm_body, crm_channel
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

CRM = common_pb2.APP_TYPE_CRM


def rss_mib(processes: dict[str, ServiceProcess]) -> dict[str, int]:
    pids = ",".join(str(p.pid) for p in processes.values())
    out = subprocess.run(["ps", "-o", "pid=,rss=", "-p", pids],
                         capture_output=True, text=True, check=True).stdout
    kib = {int(pid): int(rss) for pid, rss in (line.split() for line in out.splitlines())}
    return {name: round(kib[p.pid] / 1024) for name, p in processes.items()}


def start(origin: str, database_url: str) -> dict[str, ServiceProcess]:
    broker_env = {
        "BROKER_DATABASE_URL": database_url, "BROKER_ENCRYPTION_KEY": TEST_KEY,
        "ZOHO_CLIENT_ID": DEMO_CLIENT_ID, "ZOHO_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "ZOHO_EXTRA_ORIGINS": origin, "BROKER_LISTEN": "127.0.0.1:0", "LOG_FORMAT": "json",
    }
    subprocess.run([sys.executable, "-m", "broker", "migrate"], cwd=REPO_ROOT, check=True,
                   env={**os.environ, **broker_env}, capture_output=True)
    processes = {"broker": ServiceProcess("broker", broker_env, "serve", "--no-migrate")}
    # As deploy/kubernetes runs it: the ingress with the database URL alone, no key.
    notifier_env = {"NOTIFIER_DATABASE_URL": database_url, "ZOHO_EXTRA_ORIGINS": origin,
                    "LOG_FORMAT": "json"}
    processes["ingress"] = ServiceProcess("notifier", notifier_env, "ingress",
                                          first_line_prefix="ingress listening on ")
    processes["notifier"] = ServiceProcess("notifier", {
        **notifier_env, "NOTIFIER_ENCRYPTION_KEY": TEST_KEY, "NOTIFIER_LISTEN": "127.0.0.1:0",
        "NOTIFIER_BROKER_TARGET": processes["broker"].address,
        "NOTIFIER_PUBLIC_URL": processes["ingress"].origin,
    })
    return processes


async def traffic(processes: dict[str, ServiceProcess], origin: str, users: int) -> None:
    names = [f"rss-{i}" for i in range(users)]
    async with SandboxControl(origin) as sandbox, httpx.AsyncClient(timeout=10) as http, \
            grpc.aio.insecure_channel(processes["broker"].address) as to_broker, \
            grpc.aio.insecure_channel(processes["notifier"].address) as to_notifier:
        broker = broker_pb2_grpc.TokenBrokerServiceStub(to_broker)
        notifier = notifier_pb2_grpc.NotifierServiceStub(to_notifier)
        for user in ["demo", *names]:
            if user != "demo":
                await sandbox.add_user(user)
            token = await sandbox.add_refresh_token(user=user, scopes=SUBSCRIBING_SCOPES)
            await broker.CreateConnection(broker_pb2.CreateConnectionRequest(
                user_id=user, accounts_server=origin, refresh_token=token, api_domain=origin,
                scopes=SUBSCRIBING_SCOPES), timeout=10)
        for _ in range(20):
            await asyncio.gather(*(broker.GetToken(
                broker_pb2.GetTokenRequest(user_id=u, app_type=CRM), timeout=10) for u in names))
        listed = 0
        for _ in range(10):  # the demo user's 250 channels
            listing = notifier.ListNotifications(
                notifier_pb2.ListNotificationsRequest(user_id="demo", app_type=CRM), timeout=30)
            listed += len([item async for item in listing])
        for user in names:
            sub = await notifier.CreateSubscription(notifier_pb2.CreateSubscriptionRequest(
                user_id=user, app_type=CRM, events=["Leads.all"]), timeout=10)
            channel = await crm_channel(sandbox, sub.zoho_id, user)
            for record in range(10):
                stored = await http.post(channel["notify_url"],
                                         json=crm_body(channel, [str(1000 + record)]))
                assert stored.status_code == 200, stored.text
        watch = notifier.WatchNotifications(
            notifier_pb2.WatchNotificationsRequest(from_earliest=True), timeout=30)
        seen = 0
        async for _ in watch:
            seen += 1
            if seen == users * 10:
                break
        print(f"traffic: {users} connections, {users * 20} GetToken, {listed} items listed, "
              f"{users} subscriptions, {users * 10} callbacks stored, {seen} events watched")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    args = parser.parse_args()
    name = f"zoho_rss_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    sandbox = ServiceProcess("sandbox", {}, "--listen", "127.0.0.1:0")
    processes: dict[str, ServiceProcess] = {}
    try:
        processes = start(sandbox.origin, f"{base}/{name}")
        await asyncio.sleep(3)
        print("idle RSS MiB:", rss_mib(processes))
        await traffic(processes, sandbox.origin, args.users)
        await asyncio.sleep(1)
        print("after traffic RSS MiB:", rss_mib(processes))
    finally:
        for process in processes.values():
            process.terminate()
        sandbox.terminate()
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
