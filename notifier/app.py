"""Wiring: one broker channel, one httpx client, the servicer, the health watch, and
live events (database, event log, ingress: notifier/live.py).

`NotifierApp` owns every resource of the process; `start`/`stop` bracket them so tests
run the same wiring in-process that `zoho-notifier` runs.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx

from notifier import authz
from notifier.broker_client import BrokerClient
from notifier.capture.service import Capture
from notifier.config import NotifierConfig
from notifier.crm import CrmClient
from notifier.desk import DeskClient
from notifier.health import BrokerHealthWatch
from notifier.keeper.clock import SystemClock
from notifier.keeper.gaps import Gaps
from notifier.keeper.service import Keeper
from notifier.live import LiveEvents
from notifier.notifications import DeskOrgCache, Notifications
from notifier.service_handlers import add_notifier_service
from notifier.servicer import NotifierServicer
from notifier.subscriptions.service import Subscriptions
from notifier.subscriptions.store import SubscriptionStore, load_keys
from notifier.zoho_http import ZohoHttp
from servicekit import services
from servicekit.caller_policy import CallerPolicyInterceptor
from servicekit.origins import OriginPolicy
from servicekit.outbound import zoho_http_client
from servicekit.server import GrpcServer, ServiceBinding
from servicekit.tls import secure_or_insecure_channel

log = logging.getLogger(__name__)


def caller_policy(config: NotifierConfig) -> list[CallerPolicyInterceptor]:
    """The caller policy, under mutual TLS only (no client certificate, no identity)."""
    if config.tls is None or not config.tls.mutual:
        return []
    policy = authz.parse_policy(config.caller_policy, services.NOTIFIER.methods_by_name)
    return [CallerPolicyInterceptor(services.NOTIFIER_SERVICE_NAME, policy)]


class NotifierApp:
    def __init__(
        self, config: NotifierConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        """`transport`: tests wrap the real one to watch requests start and end."""
        self.config = config
        self.policy = OriginPolicy(list(config.extra_origins))
        self.broker_channel = secure_or_insecure_channel(
            config.broker_target,
            config.broker_tls,
            # gRPC's default reconnect backoff grows to 120 s: the notifier would stay
            # NOT_SERVING (and fail calls) for minutes after the broker came back.
            options=[
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.min_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 3000),
                # A target naming several brokers (dns:///broker:50051 with replicas,
                # ipv4:a,b) spreads calls over all of them, not only the first.
                ("grpc.lb_policy_name", "round_robin"),
            ],
        )
        self.http = zoho_http_client(
            self.policy,
            user_agent="zoho-connect-notifier/0.1",
            timeout=config.retry.request_timeout_seconds,
            transport=transport,
            max_connections=100,
        )
        zoho = ZohoHttp(self.http, config.retry)
        self.notifications = Notifications(
            BrokerClient(self.broker_channel, timeout_cap=config.broker_timeout_seconds),
            CrmClient(zoho),
            DeskClient(zoho),
            self.policy,
            DeskOrgCache(config.desk_org_ttl_seconds),
        )
        self.live = LiveEvents(config.events, self.http, self.policy, watch=True)
        self.subscriptions = Subscriptions(
            SubscriptionStore(self.live.engine),
            self.notifications,
            load_keys(config.events.encryption_key, config.events.database_url),
            public_url=lambda: self.live.public_url,
            channel_ttl_seconds=config.events.channel_ttl_seconds,
            forget=self.live.directory.forget,
            max_per_user=config.events.max_subscriptions_per_user,
        )
        self.keeper: Keeper | None = None
        if config.keeper.enabled:
            self.keeper = Keeper(
                self.live.engine,
                self.notifications,
                self.subscriptions.keys,
                self.live.writer,
                config=config.keeper,
                ttl_seconds=config.events.channel_ttl_seconds,
                public_url=lambda: self.live.public_url,
                forget=self.live.directory.forget,
            )
        self.capture: Capture | None = None
        if config.capture.enabled:
            # Zoho's clock as the keeper follows it: windows are cut on Zoho's time.
            clock = self.keeper.clock if self.keeper is not None else SystemClock()
            gaps = self.keeper.gaps if self.keeper is not None else Gaps(self.live.writer)
            self.capture = Capture(
                self.live.log, self.notifications, zoho, self.policy, gaps,
                self.live.tail.wake, config=config.capture, clock=clock,
                retention=timedelta(seconds=config.events.event_retention_seconds),
            )
            gaps.read_back = self.capture.read_back
            self.live.outages.read_back = self.capture.read_back
            if self.keeper is not None:
                self.capture.reader.user_lock = self.keeper.user_lock
        servicer = NotifierServicer(
            self.notifications, self.subscriptions, self.live.watches, self.live.consumers
        )
        self.server = GrpcServer(
            config.listen,
            [
                ServiceBinding(
                    services.NOTIFIER_SERVICE_NAME,
                    lambda server: add_notifier_service(servicer, server),
                )
            ],
            credentials=config.tls.credentials() if config.tls else None,
            stream_limits=config.streams,
            grace_seconds=config.grace_seconds,
            interceptors=caller_policy(config),
        )
        self.health = BrokerHealthWatch(
            self.broker_channel,
            lambda serving: self.server.set_serving(services.NOTIFIER_SERVICE_NAME, serving),
            interval=config.health_interval_seconds,
            check_policy=config.broker_tls is not None and config.broker_tls.cert_chain is not None,
        )

    async def start(self, *, migrate: bool = True) -> str:
        """Starts serving (the ingress first); returns the gRPC HOST:PORT."""
        await self.live.start(migrate=migrate)
        address = await self.server.start()
        self.health.start()
        if self.keeper is not None:
            await self.keeper.start()
        if self.capture is not None:
            await self.capture.start()
        return address

    async def close(self) -> None:
        """Everything but the server (run_until_signal stops that, draining calls first)."""
        if self.capture is not None:
            await self.capture.stop()
        if self.keeper is not None:
            await self.keeper.stop()
        await self.live.stop()
        await self.health.stop()
        await self.http.aclose()
        await self.broker_channel.close()

    async def stop(self, grace: float | None = None) -> None:
        await self.server.stop(grace)
        await self.close()
