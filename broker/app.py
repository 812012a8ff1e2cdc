"""Wiring: builds the broker's parts from its configuration and runs the server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from broker.authz import parse_policy
from broker.config import BrokerConfig
from broker.core.connection_cache import ConnectionCache
from broker.core.connections import ConnectionService
from broker.core.mint_budget import MintBudget
from broker.core.refresher import Refresher
from broker.core.tokens import TokenService, utc_now
from broker.core.zoho_accounts import AccountsClient
from broker.servicer import TokenBrokerServicer
from broker.storage import key_maintenance
from broker.storage.connection_store import ConnectionStore
from broker.storage.sealed_columns import KeyRing, load_key_ring
from broker.storage.tables import DATABASE, PROBE_QUERY
from servicekit import services
from servicekit.caller_policy import CallerPolicyInterceptor
from servicekit.errors import Unavailable
from servicekit.origins import OriginPolicy
from servicekit.outbound import zoho_http_client
from servicekit.replica import replica_id
from servicekit.server import GrpcServer, ServiceBinding
from zoho.broker.v1 import broker_pb2_grpc

log = logging.getLogger(__name__)


def key_ring(config: BrokerConfig) -> KeyRing:
    return load_key_ring(config.encryption_keys, sqlite_path=config.sqlite_path)


def caller_policy(config: BrokerConfig) -> list[CallerPolicyInterceptor]:
    """The caller policy, under mutual TLS only (no client certificate, no identity)."""
    if config.tls is None or not config.tls.mutual:
        return []
    methods = services.BROKER.methods_by_name
    policy = parse_policy(config.caller_policy, methods)
    return [CallerPolicyInterceptor(services.BROKER_SERVICE_NAME, policy)]


class Broker:
    """A running broker: its server and the parts behind it."""

    def __init__(
        self,
        config: BrokerConfig,
        *,
        replica: str | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        config.require_client()
        self.config = config
        interceptors = caller_policy(config)
        self.policy = OriginPolicy(config.extra_origins)
        self.keys = key_ring(config)
        self.engine = DATABASE.make_async_engine(config.database_url)
        self.http = zoho_http_client(self.policy, user_agent="zoho-connect-broker/0.1")
        self.store = ConnectionStore(self.engine, self.keys)
        self.store.on_damage = self._report_damage
        self._damage_report: asyncio.Future[None] | None = None
        self.accounts = AccountsClient(
            self.http,
            client_id=config.client_id,
            client_secret=config.client_secret,
            attempt_timeout=config.zoho_timeout_seconds,
            max_attempts=config.zoho_max_attempts,
        )
        replica = replica or replica_id()
        self.cache = ConnectionCache(self.store, config.cache_seconds)
        self.budget = MintBudget(self.store, config.mint_budget, config.mint_budget_window_seconds)
        self.refresher = Refresher(self.store, self.cache, self.budget, self.accounts,
                                   self.policy, config, replica=replica, clock=clock)
        self.tokens = TokenService(self.cache, self.refresher, config,
                                   replica=replica, clock=clock)
        self.connections = ConnectionService(self.store, self.cache, self.budget, self.accounts,
                                             self.policy, replica=replica, clock=clock)
        servicer = TokenBrokerServicer(self.tokens, self.connections)
        self.server = GrpcServer(
            config.listen,
            [ServiceBinding(
                services.BROKER_SERVICE_NAME,
                lambda server: broker_pb2_grpc.add_TokenBrokerServiceServicer_to_server(
                    servicer, server
                ),
            )],
            credentials=config.tls.credentials() if config.tls else None,
            grace_seconds=config.grace_seconds,
            interceptors=interceptors,
        )

    def _report_damage(self) -> None:
        """The database is damaged: NOT_SERVING, so load balancers and the notifier's
        health watch stop sending calls that cannot succeed."""
        async def not_serving() -> None:
            await self.server.set_serving(services.BROKER_SERVICE_NAME, False)
            await self.server.set_serving("", False)

        self._damage_report = asyncio.ensure_future(not_serving())

    async def start(self, *, migrate: bool = True) -> str:
        url = self.config.database_url
        if migrate:
            await asyncio.to_thread(DATABASE.migrate, url)
        # A database that is garbage, damaged or read-only stops the process here (exit 2),
        # named in one line, before anything listens.
        await asyncio.to_thread(DATABASE.check_usable, url, PROBE_QUERY)
        # A key ring that cannot read the stored tokens stops the process here (exit 2).
        try:
            await key_maintenance.check_keys(self.store)
        except Unavailable as down:
            raise DATABASE.unusable(url, f"cannot be read: {down.message}") from None
        return await self.server.start()

    async def close(self) -> None:
        """Releases what start() and the constructor took (after the server stopped)."""
        await self.cache.close()
        await self.refresher.close()
        await self.http.aclose()
        await self.engine.dispose()

    async def stop(self, grace: float | None = None) -> None:
        await self.server.stop(grace)
        await self.close()
