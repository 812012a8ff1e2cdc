"""The alert rules (deploy/prometheus/) and the dashboard (deploy/grafana/) name only what the
services export: a broker, a notifier and an ingress-only notifier run as real processes,
are driven through a token refresh and a cache hit, a listing, a subscription that the
keeper repairs and renews, callbacks stored and refused, a callback Zoho drops that change
capture reads back, a grant without the read scope whose window stays open, and a consumer
pulled with a nack; then every expression's metric names, label names and exact label
values are looked up in their /metrics."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import yaml

from sandbox.control.client import SandboxControl
from servicekit import services
from servicekit.error_status import CODES
from tests.consumers.helpers import Puller
from tests.ops.promql_names import PROMETHEUS_SERIES, Exported, exact_values, names_in, problems
from tests.plugins.broker_fixtures import TEST_KEY
from tests.plugins.live_fixtures import SUBSCRIBING_SCOPES
from tests.plugins.processes import REPO_ROOT, ServiceProcess
from tests.plugins.zoho_callbacks import crm_body, crm_channel
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

RULES = REPO_ROOT / "deploy/prometheus/zoho-connect.rules.yml"
DASHBOARD = REPO_ROOT / "deploy/grafana/dashboards/zoho-connect.json"
SERVICE_SOURCES = ("broker", "notifier", "servicekit")
CRM = common_pb2.APP_TYPE_CRM
DAY = 86400.0
NO_READ_SCOPES = [s for s in SUBSCRIBING_SCOPES if s != "ZohoCRM.modules.READ"]


def rule_expressions(path: Path = RULES) -> dict[str, str]:
    rules = yaml.safe_load(path.read_text())
    return {
        f"alert {rule.get('alert') or rule.get('record')}": str(rule["expr"])
        for group in rules["groups"] for rule in group["rules"]
    }


def dashboard_targets(path: Path = DASHBOARD) -> dict[str, dict[str, Any]]:
    dashboard = json.loads(path.read_text())
    panels = [p for top in dashboard["panels"] for p in [top, *top.get("panels", [])]]
    return {
        f"panel {panel['title']!r} {target['refId']}": target
        for panel in panels for target in panel.get("targets", [])
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stack:
    broker: ServiceProcess
    notifier: ServiceProcess
    ingress: ServiceProcess
    metrics_urls: dict[str, str]


@pytest.fixture
def stack(
    sandbox: SandboxControl, broker_env: dict[str, str], notifier_database_url: str
) -> Iterator[Stack]:
    ports = {name: free_port() for name in ("broker", "notifier", "ingress")}
    started: list[ServiceProcess] = []
    try:
        # No drain at the end: nothing is in flight by then.
        broker = ServiceProcess("broker", {
            **broker_env, "BROKER_METRICS_LISTEN": f"127.0.0.1:{ports['broker']}",
            "BROKER_GRACE_SECONDS": "0",
        }, "serve", "--no-migrate")
        started.append(broker)
        notifier_env = {
            "NOTIFIER_DATABASE_URL": notifier_database_url,
            "NOTIFIER_ENCRYPTION_KEY": TEST_KEY,
            "ZOHO_EXTRA_ORIGINS": sandbox.origin,
        }
        # The ingress alone, as the internet-facing Deployment runs it.
        ingress = ServiceProcess("notifier", {
            **notifier_env, "NOTIFIER_METRICS_LISTEN": f"127.0.0.1:{ports['ingress']}",
        }, "ingress", first_line_prefix="ingress listening on ")
        started.append(ingress)
        notifier = ServiceProcess("notifier", {
            **notifier_env,
            "NOTIFIER_LISTEN": "127.0.0.1:0",
            "NOTIFIER_BROKER_TARGET": broker.address,
            "NOTIFIER_METRICS_LISTEN": f"127.0.0.1:{ports['notifier']}",
            "NOTIFIER_PUBLIC_URL": ingress.origin,
            # The keeper follows Zoho's (the sandbox's) clock, so days pass in a call.
            "NOTIFIER_KEEPER_CLOCK_URL": sandbox.origin + "/_sandbox/clock",
            "NOTIFIER_KEEPER_TICK_SECONDS": "0.2",
            "NOTIFIER_HEALTH_INTERVAL_SECONDS": "0.2",
            "NOTIFIER_GRACE_SECONDS": "0",
            "NOTIFIER_CONSUMER_METRICS_SECONDS": "0.2",
        })
        started.append(notifier)
        yield Stack(broker, notifier, ingress, {
            name: f"http://127.0.0.1:{port}/metrics" for name, port in ports.items()
        })
    finally:
        for process in reversed(started):
            process.terminate()


async def scrape(stack: Stack) -> Exported:
    exported = Exported()
    async with httpx.AsyncClient(timeout=5) as http:
        for url in stack.metrics_urls.values():
            response = await http.get(url)
            response.raise_for_status()
            exported.add_scrape(response.text)
    return exported


async def until_sampled(stack: Stack, *metrics: str, limit: float = 60.0) -> Exported:
    """Scrapes until each of `metrics` has a sample (the keeper works on its own ticks),
    or `limit` seconds have passed: then the last scrape, for the check to say what lacks."""
    deadline = asyncio.get_running_loop().time() + limit
    while True:
        exported = await scrape(stack)
        if all(m in exported.labels for m in metrics) \
                or asyncio.get_running_loop().time() > deadline:
            return exported
        await asyncio.sleep(0.2)


async def drive_traffic(stack: Stack, sandbox: SandboxControl) -> None:
    # A first token that lives 60 s, inside the 120 s refresh window: GetToken refreshes it,
    # and the second GetToken is served from memory.
    refresh_token = await sandbox.add_refresh_token(
        scopes=SUBSCRIBING_SCOPES, lifetimes=[60, 3600]
    )
    # A user whose grant may subscribe but not read records: change capture cannot read
    # its window back, which stays open as MISSING_SCOPE.
    await sandbox.add_user("noread")
    unreadable = await sandbox.add_refresh_token(user="noread", scopes=NO_READ_SCOPES)
    async with grpc.aio.insecure_channel(stack.broker.address) as channel:
        broker = broker_pb2_grpc.TokenBrokerServiceStub(channel)
        await broker.CreateConnection(broker_pb2.CreateConnectionRequest(
            user_id="demo", accounts_server=sandbox.origin, refresh_token=refresh_token,
            api_domain=sandbox.origin, scopes=SUBSCRIBING_SCOPES,
        ), timeout=10)
        await broker.CreateConnection(broker_pb2.CreateConnectionRequest(
            user_id="noread", accounts_server=sandbox.origin, refresh_token=unreadable,
            api_domain=sandbox.origin, scopes=NO_READ_SCOPES,
        ), timeout=10)
        for _ in range(2):
            await broker.GetToken(broker_pb2.GetTokenRequest(user_id="demo", app_type=CRM),
                                  timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await broker.GetToken(broker_pb2.GetTokenRequest(user_id="nobody", app_type=CRM),
                                  timeout=10)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    async with grpc.aio.insecure_channel(stack.notifier.address) as channel:
        notifier = notifier_pb2_grpc.NotifierServiceStub(channel)
        listing = notifier.ListNotifications(
            notifier_pb2.ListNotificationsRequest(user_id="demo", app_type=CRM), timeout=30
        )
        assert len([item async for item in listing]) == 250
        sub = await notifier.CreateSubscription(notifier_pb2.CreateSubscriptionRequest(
            user_id="demo", app_type=CRM, events=["Leads.all"]), timeout=10)
        channel_at_zoho = await crm_channel(sandbox, sub.zoho_id)
        async with httpx.AsyncClient(timeout=10) as http:
            stored = await http.post(channel_at_zoho["notify_url"],
                                     json=crm_body(channel_at_zoho, ["5725767000000421001"]))
            refused = await http.post(f"{stack.ingress.origin}/callbacks/crm/{'9' * 20}",
                                      json=crm_body({**channel_at_zoho, "token": "x"}, ["1"]))
        assert (stored.status_code, refused.status_code) == (200, 401)
        await watch_one(notifier)
        # A change whose callback Zoho drops: only a read-back brings it. Made a second
        # after subscribing: Zoho's times are whole seconds, and a record created in the
        # subscription's own second is taken as made before it.
        await sandbox.advance_clock(2)
        await sandbox.delivery_fault("drop", count=1, subscription=sub.zoho_id)
        dropped = await sandbox.change_records(
            "crm", "Leads", "insert", [{"values": {"Company": "Dropped"}}]
        )
        assert [d.status for d in dropped if d.subscription == sub.zoho_id] == ["dropped"]
        await notifier.CreateSubscription(notifier_pb2.CreateSubscriptionRequest(
            user_id="noread", app_type=CRM, events=["Leads.all"]), timeout=10)
        # Six days on by Zoho's clock the channel is due for renewal (whenever the keeper
        # enrolled it: its due time follows from the expiry).
        await sandbox.advance_clock(6 * DAY + 3600)
        await until_sampled(stack, "notifier_keeper_renewals_total", "notifier_subscriptions")
        # Then deleted behind the notifier's back: the next reconcile, at most an hour later
        # by Zoho's clock, puts it back.
        await notifier.DisableCrmChannels(notifier_pb2.DisableCrmChannelsRequest(
            user_id="demo", channel_ids=[sub.zoho_id]), timeout=10)
        await sandbox.advance_clock(3600 + 60)
        await until_sampled(stack, "notifier_keeper_repairs_total")
        await until_sampled(stack, "notifier_capture_recovered_events_total")
        await pull_with_a_nack(notifier)


async def watch_one(notifier: notifier_pb2_grpc.NotifierServiceStub) -> None:
    """A watch that reads the stored callback back, so the watch lag has an observation."""
    watch = notifier.WatchNotifications(notifier_pb2.WatchNotificationsRequest(
        user_id="demo", from_earliest=True), timeout=30)
    try:
        async for event in watch:
            assert event.record_id == "5725767000000421001"
            break
    finally:
        watch.cancel()


async def pull_with_a_nack(notifier: notifier_pb2_grpc.NotifierServiceStub) -> None:
    """A consumer of everything in the log: one event nacked and delivered again, then
    every event acknowledged but the last, so its backlog and age stay on."""
    await notifier.CreateConsumer(notifier_pb2.CreateConsumerRequest(
        consumer_id="ops-check", from_earliest=True), timeout=10)
    pull = Puller(notifier, "ops-check", max_outstanding=1)
    try:
        [(first, attempts)] = await pull.wait_for(1)
        await pull.nack(first.cursor)
        again = await pull.wait_for(2)
        assert (again[1][0].cursor, again[1][1]) == (first.cursor, attempts + 1)
        await pull.ack(first.cursor)
        await pull.wait_for(3)
    finally:
        await pull.stop()


def _literal_in_sources(value: str) -> bool:
    quoted = re.compile(rf"""["']{re.escape(value)}["']""")
    return any(
        quoted.search(path.read_text())
        for package in SERVICE_SOURCES for path in (REPO_ROOT / package).rglob("*.py")
    )


def value_problems(expr: str, exported: Exported) -> list[str]:
    """Exact label values the services cannot emit (a typo matches nothing, silently)."""
    methods = {
        f"/{service.full_name}/{method.name}"
        for service in (services.BROKER, services.NOTIFIER) for method in service.methods
    }
    wrong = []
    for matcher in exact_values(expr):
        if matcher.metric in PROMETHEUS_SERIES or matcher.label in ("job", "instance"):
            continue
        seen = exported.values.get((matcher.metric, matcher.label), set())
        if matcher.label == "method":
            ok = matcher.value in methods
        elif matcher.label == "code":
            ok = matcher.value in grpc.StatusCode.__members__
        elif matcher.label == "reason":
            ok = matcher.value in CODES or matcher.value in seen
        else:
            ok = matcher.value in seen or _literal_in_sources(matcher.value) \
                or (matcher.label == "status" and matcher.value.isdigit())
        if not ok:
            wrong.append(f"{matcher.metric}{{{matcher.label}={matcher.value!r}}}: no such value")
    return wrong


def legend_problems(target: dict[str, Any], exported: Exported) -> list[str]:
    """`{{label}}` in a legend must be a label the expression keeps."""
    found = names_in(target["expr"])
    kept = found.grouping or set().union(
        *(exported.labels.get(m, set()) for m in found.metrics)
    )
    return [
        f"legend names {label!r}, which the expression does not keep"
        for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", ""))
        if label not in kept
    ]


async def test_alerts_and_dashboard_name_only_what_the_services_export(
    stack: Stack, sandbox: SandboxControl
) -> None:
    await drive_traffic(stack, sandbox)
    expressions = {**rule_expressions(), **{
        name: str(target["expr"]) for name, target in dashboard_targets().items()
    }}
    assert len(expressions) > 40, "the rules and the dashboard were not read"
    referenced = {m for expr in expressions.values() for m in names_in(expr).metrics}
    announced = await scrape(stack)
    exported = await until_sampled(stack, *(m for m in referenced if announced.has_metric(m)))

    wrong = {
        name: found for name, expr in expressions.items()
        if (found := problems(expr, exported) + value_problems(expr, exported))
    }
    wrong.update({
        name: found for name, target in dashboard_targets().items()
        if (found := legend_problems(target, exported))
    })
    assert wrong == {}
    # An error's reason is its own label value, not folded into its code.
    refused = {
        (labels["code"], labels["reason"]) for name, labels in exported.samples
        if name == "grpc_server_handled_total" and labels["method"].endswith("/GetToken")
    }
    assert {("OK", ""), ("FAILED_PRECONDITION", "NOT_CONNECTED")} <= refused
