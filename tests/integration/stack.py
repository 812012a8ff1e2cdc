"""The stack the integration suite runs against, from one of two places:

- compose: `INTEGRATION_BROKER_TARGETS` (comma-separated), `INTEGRATION_NOTIFIER_TARGET`,
  `INTEGRATION_SANDBOX_ORIGIN` (and optionally the metrics URLs) name the services of
  docker-compose.yml's network. A broker target whose name resolves to several addresses
  (compose's `broker`, one per replica) stands for each of them, in address order, once
  `INTEGRATION_BROKER_REPLICAS` of them resolve; the metrics URLs on that name likewise;
- local (CI, no Docker engine): the same processes on 127.0.0.1 with free ports, on a fresh
  PostgreSQL database: `zoho-broker migrate` once, two `zoho-broker serve --no-migrate`, a
  notifier over both, and the sandbox. Their environment is docker-compose.yml's, read from
  that file, with only the host-specific values (addresses, database, key) replaced.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import yaml

from sandbox.demo.tenant import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from tests.plugins.broker_fixtures import POSTGRES_ADMIN_URL, TEST_KEY
from tests.plugins.processes import REPO_ROOT, ServiceProcess

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
# Values in docker-compose.yml that name hosts of the compose network, or secrets: the local
# launcher must replace each of them (and only them), so it fails loudly if they drift.
LOCAL_OVERRIDES = {
    "sandbox": {"SANDBOX_LISTEN", "SANDBOX_DELIVER_TO"},
    "migrate": {"BROKER_DATABASE_URL", "BROKER_ENCRYPTION_KEY", "ZOHO_EXTRA_ORIGINS"},
    "broker": {
        "BROKER_LISTEN", "BROKER_METRICS_LISTEN", "BROKER_DATABASE_URL",
        "BROKER_ENCRYPTION_KEY", "ZOHO_EXTRA_ORIGINS",
    },
    "notifier": {
        "NOTIFIER_LISTEN", "NOTIFIER_BROKER_TARGET", "NOTIFIER_METRICS_PORT", "ZOHO_EXTRA_ORIGINS",
        "NOTIFIER_DATABASE_URL", "NOTIFIER_ENCRYPTION_KEY", "NOTIFIER_INGRESS_LISTEN",
        "NOTIFIER_PUBLIC_URL",
    },
}
# ${NAME}, ${NAME:-default}, ${NAME:?message}, as compose interpolates them.
_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::(?P<op>[-?])(?P<arg>[^}]*))?\}")


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    with path.open() as handle:
        data: dict[str, Any] = yaml.safe_load(handle)
    return data


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if variables.get(name):
            return variables[name]
        if op == "-":
            return arg
        raise KeyError(f"docker-compose.yml needs {name} ({arg or 'no default'})")

    return _INTERPOLATION.sub(one, value)


def compose_environment(service: str, variables: Mapping[str, str]) -> dict[str, str]:
    """A service's `environment` in docker-compose.yml, interpolated with `variables`."""
    spec = load_compose()["services"][service].get("environment") or {}
    if isinstance(spec, list):
        spec = dict(item.split("=", 1) for item in spec)
    return {str(k): interpolate(str(v), variables) for k, v in spec.items()}


def local_environment(service: str, overrides: Mapping[str, str]) -> dict[str, str]:
    """docker-compose.yml's environment for `service`, with its host-specific values replaced
    by `overrides`, which must name exactly those values."""
    expected = LOCAL_OVERRIDES[service]
    if set(overrides) != expected:
        raise AssertionError(f"{service}: override {sorted(expected)}, not {sorted(overrides)}")
    # Secrets that compose takes from the operator's environment; locally, the sandbox's
    # public demo client and the test key.
    variables = {
        "ZOHO_CLIENT_ID": DEMO_CLIENT_ID,
        "ZOHO_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "BROKER_ENCRYPTION_KEY": TEST_KEY,
        "NOTIFIER_ENCRYPTION_KEY": TEST_KEY,
        "POSTGRES_PASSWORD": "unused-locally",
    }
    env = compose_environment(service, variables)
    missing = expected - set(env)
    if missing:
        raise AssertionError(f"docker-compose.yml's {service} no longer sets {sorted(missing)}")
    return {**env, **overrides}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stack:
    broker_targets: list[str]
    notifier_target: str
    sandbox_origin: str
    broker_metrics_urls: list[str] = field(default_factory=list)
    notifier_metrics_url: str = ""
    # Local only: the processes, for their logs.
    brokers: list[ServiceProcess] = field(default_factory=list)
    notifier: ServiceProcess | None = None

    @property
    def local(self) -> bool:
        return bool(self.brokers)


def replica_addresses(host: str, replicas: int, timeout: float = 60.0) -> list[str]:
    """Every address `host` resolves to, sorted; with `replicas`, waits (bounded) until that
    many resolve: compose's DNS lists a replica only while its container runs."""
    try:
        ipaddress.ip_address(host)
        return [host]
    except ValueError:
        pass
    deadline = time.monotonic() + timeout
    while True:
        try:
            infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
            found = sorted({str(info[4][0]) for info in infos}, key=ipaddress.ip_address)
        except socket.gaierror:
            found = []
        if found and (replicas <= 0 or len(found) >= replicas):
            return found
        if time.monotonic() > deadline:
            raise RuntimeError(f"{host} resolves to {found}, not {replicas} replicas")
        time.sleep(0.5)


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def stack_from_environment(environ: Mapping[str, str]) -> Stack | None:
    named = _split(environ.get("INTEGRATION_BROKER_TARGETS", ""))
    if not named:
        return None
    replicas = int(environ.get("INTEGRATION_BROKER_REPLICAS", "0") or 0)
    addresses: dict[str, list[str]] = {}
    targets: list[str] = []
    for target in named:
        host, _, port = target.rpartition(":")
        addresses[host] = replica_addresses(host, replicas if len(named) == 1 else 0)
        targets += [f"{address}:{port}" for address in addresses[host]]
    metrics: list[str] = []
    for url in _split(environ.get("INTEGRATION_BROKER_METRICS_URLS", "")):
        parts = urlsplit(url)
        hosts = addresses.get(parts.hostname or "", [parts.hostname or ""])
        metrics += [urlunsplit(parts._replace(netloc=f"{host}:{parts.port}")) for host in hosts]
    return Stack(
        broker_targets=targets,
        notifier_target=environ["INTEGRATION_NOTIFIER_TARGET"],
        sandbox_origin=environ["INTEGRATION_SANDBOX_ORIGIN"].rstrip("/"),
        broker_metrics_urls=metrics,
        notifier_metrics_url=environ.get("INTEGRATION_NOTIFIER_METRICS_URL", ""),
    )


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (a SQLAlchemy URL as compose writes it)."""
    name = f"zoho_it_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        _drop(name)


def _drop(name: str) -> None:
    # Other suites (fault tests) may be restarting the shared server right now: retry a while.
    for attempt in range(20):
        try:
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except psycopg.OperationalError:
            if attempt == 19:
                raise
            time.sleep(0.5)


def _migrate(env: Mapping[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "broker", "migrate"], cwd=REPO_ROOT,
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"zoho-broker migrate failed ({done.returncode}):\n{done.stderr}")


@contextmanager
def local_stack() -> Iterator[Stack]:
    with postgres_database() as database_url:
        started: list[ServiceProcess] = []
        try:
            sandbox = ServiceProcess("sandbox", local_environment(
                "sandbox", {"SANDBOX_LISTEN": "127.0.0.1:0", "SANDBOX_DELIVER_TO": "127.0.0.0/8"}))
            started.append(sandbox)
            origin = f"http://{sandbox.address}"
            broker_common = {
                "BROKER_DATABASE_URL": database_url,
                "BROKER_ENCRYPTION_KEY": TEST_KEY,
                "ZOHO_EXTRA_ORIGINS": origin,
            }
            _migrate(local_environment("migrate", broker_common))
            brokers: list[ServiceProcess] = []
            metrics_urls: list[str] = []
            for _ in range(2):
                metrics_port = free_port()
                env = local_environment("broker", {
                    **broker_common,
                    "BROKER_LISTEN": "127.0.0.1:0",
                    "BROKER_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
                })
                brokers.append(ServiceProcess("broker", env, "serve", "--no-migrate"))
                started.append(brokers[-1])
                metrics_urls.append(f"http://127.0.0.1:{metrics_port}/metrics")
            notifier_metrics, ingress_port = free_port(), free_port()
            notifier = ServiceProcess("notifier", local_environment("notifier", {
                "NOTIFIER_LISTEN": "127.0.0.1:0",
                # Both replicas behind one target, as dns:///broker:50051 is in compose.
                "NOTIFIER_BROKER_TARGET": "ipv4:" + ",".join(b.address for b in brokers),
                "NOTIFIER_METRICS_PORT": str(notifier_metrics),
                "ZOHO_EXTRA_ORIGINS": origin,
                "NOTIFIER_DATABASE_URL": database_url,
                "NOTIFIER_ENCRYPTION_KEY": TEST_KEY,
                "NOTIFIER_INGRESS_LISTEN": f"127.0.0.1:{ingress_port}",
                "NOTIFIER_PUBLIC_URL": f"http://127.0.0.1:{ingress_port}",
            }))
            started.append(notifier)
            yield Stack(
                broker_targets=[b.address for b in brokers],
                notifier_target=notifier.address,
                sandbox_origin=origin,
                broker_metrics_urls=metrics_urls,
                notifier_metrics_url=f"http://127.0.0.1:{notifier_metrics}/metrics",
                brokers=brokers,
                notifier=notifier,
            )
        finally:
            for process in reversed(started):
                process.terminate()
