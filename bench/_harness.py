"""What every benchmark needs: real processes on free ports, a scratch PostgreSQL
database, percentiles, peak RSS, and a table with PASS/FAIL per target.

Benchmarks run from the repository root as `.venv/bin/python bench/NAME.py`; this
module is imported by file location, so `bench/` needs no package marker.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.plugins.processes import ServiceProcess  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


# One process starter for tests and benchmarks (the repository root is on sys.path).
Service = ServiceProcess


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def services() -> Iterator[list[Service]]:
    """Collects started services and stops them all (in reverse) on the way out."""
    started: list[Service] = []
    try:
        yield started
    finally:
        for service in reversed(started):
            service.stop()


@contextlib.contextmanager
def postgres_database(prefix: str = "bench") -> Iterator[str]:
    """A fresh, migrated `bench_*` database, dropped afterwards. Yields its SQLAlchemy URL."""
    import psycopg

    from broker.storage.tables import DATABASE

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace(
        "postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    try:
        DATABASE.migrate(url)
        yield url
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def broker_env(sandbox_origin: str, database_url: str, **extra: str) -> dict[str, str]:
    from sandbox.demo.tenant import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
    from servicekit.sealing import new_key_spec

    return {
        "BROKER_LISTEN": "127.0.0.1:0",
        "BROKER_DATABASE_URL": database_url,
        "BROKER_ENCRYPTION_KEY": extra.pop("BROKER_ENCRYPTION_KEY", None) or new_key_spec("bench"),
        "ZOHO_CLIENT_ID": DEMO_CLIENT_ID,
        "ZOHO_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "ZOHO_EXTRA_ORIGINS": sandbox_origin,
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Report:
    title: str
    command: str
    rows: list[tuple[str, ...]] = field(default_factory=list)
    verdicts: list[tuple[str, bool, str]] = field(default_factory=list)

    def row(self, *cells: object) -> None:
        self.rows.append(tuple(_cell(c) for c in cells))

    def target(self, name: str, ok: bool, detail: str) -> None:
        self.verdicts.append((name, ok, detail))

    def print(self) -> bool:
        print()
        print(f"== {self.title}")
        print(f"   command: {self.command}")
        print(f"   host: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, "
              f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
        if self.rows:
            widths = [max(len(r[i]) for r in self.rows if i < len(r))
                      for i in range(max(len(r) for r in self.rows))]
            for i, r in enumerate(self.rows):
                print("   " + "  ".join(c.ljust(widths[j]) for j, c in enumerate(r)).rstrip())
                if i == 0:
                    print("   " + "  ".join("-" * w for w in widths))
        for name, ok, detail in self.verdicts:
            print(f"   {'PASS' if ok else 'FAIL'}  {name}: {detail}")
        return all(ok for _, ok, _ in self.verdicts)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


async def demo_crm_subscription(
    sandbox_origin: str, broker_address: str, notifier_address: str
) -> dict[str, Any]:
    """Connects the demo user (with the scopes a subscription needs) and has the notifier
    create one CRM subscription; returns the sandbox's view of its channel."""
    import grpc

    from sandbox.control.client import SandboxControl
    from tests.plugins.live_fixtures import SUBSCRIBING_SCOPES
    from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
    from zoho.common.v1 import common_pb2
    from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

    async with SandboxControl(sandbox_origin) as control:
        token = await control.add_refresh_token(scopes=SUBSCRIBING_SCOPES)
        async with grpc.aio.insecure_channel(broker_address) as ch:
            await broker_pb2_grpc.TokenBrokerServiceStub(ch).CreateConnection(
                broker_pb2.CreateConnectionRequest(
                    user_id="demo", accounts_server=sandbox_origin, refresh_token=token,
                    api_domain=sandbox_origin, scopes=SUBSCRIBING_SCOPES))
        async with grpc.aio.insecure_channel(notifier_address) as ch:
            sub = await notifier_pb2_grpc.NotifierServiceStub(ch).CreateSubscription(
                notifier_pb2.CreateSubscriptionRequest(
                    user_id="demo", app_type=common_pb2.APP_TYPE_CRM, events=["Leads.all"]))
        channels: list[dict[str, Any]] = await control.crm_channels()
    return next(c for c in channels if c["channel_id"] == sub.zoho_id)
