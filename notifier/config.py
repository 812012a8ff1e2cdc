"""The notifier's configuration, read once from the environment at start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from notifier.capture.config import CaptureConfig
from notifier.consumers.config import ConsumersConfig
from notifier.database import DATABASE
from notifier.database import DEFAULT_URL as DEFAULT_DATABASE_URL
from notifier.ingress.limits import ConnectionLimits, DeliveryLimits
from notifier.keeper.config import KeeperConfig
from servicekit.config import ConfigError, Env, ListenAddress, SharedSettings
from servicekit.streams import StreamLimits
from servicekit.tls import ClientTls, ServerTls

MAX_CHANNEL_TTL_SECONDS = 604800  # Zoho's week


@dataclass(frozen=True)
class EventsConfig:
    """The notifier's database, its ingress and the event log (live events)."""

    database_url: str = DEFAULT_DATABASE_URL
    # Seals CRM channel tokens at rest; SQLite may use a generated key file instead.
    encryption_key: str = ""
    ingress_listen: ListenAddress = field(
        default_factory=lambda: ListenAddress("127.0.0.1", 8781)
    )
    # Empty: http:// + the address the ingress bound.
    public_url: str = ""
    channel_ttl_seconds: float = MAX_CHANNEL_TTL_SECONDS
    event_retention_seconds: float = 604800.0
    prune_interval_seconds: float = 60.0
    # How often the log is re-read without a wake-up (another process's ingress on
    # SQLite; a lost LISTEN connection on PostgreSQL).
    poll_seconds: float = 0.5
    ingress_max_body_bytes: int = 1024 * 1024
    ingress_read_timeout_seconds: float = 5.0
    # Empty: each Desk webhook's own host's /.well-known/jwks.json.
    desk_jwks_url: str = ""
    # Each subscription costs the org's Zoho quota (renewals, reconciles): capped per user.
    max_subscriptions_per_user: int = 200
    ingress_connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    ingress_deliveries: DeliveryLimits = field(default_factory=DeliveryLimits)
    consumers: ConsumersConfig = field(default_factory=ConsumersConfig)

    @classmethod
    def from_env(cls, env: Env) -> EventsConfig:
        public_url = env.text("NOTIFIER_PUBLIC_URL", "").rstrip("/")
        if public_url and (
            not public_url.startswith(("http://", "https://")) or "?" in public_url
        ):
            raise ConfigError("NOTIFIER_PUBLIC_URL", "expected an http(s) URL without a query")
        jwks = env.text("NOTIFIER_DESK_JWKS_URL", "")
        if jwks and not jwks.startswith(("http://", "https://")):
            raise ConfigError("NOTIFIER_DESK_JWKS_URL", "expected an http(s) URL")
        d = cls()
        database_url = env.text("NOTIFIER_DATABASE_URL", d.database_url)
        DATABASE.parse(database_url)
        return cls(
            database_url=database_url,
            encryption_key=env.text("NOTIFIER_ENCRYPTION_KEY", d.encryption_key),
            ingress_listen=env.listen("NOTIFIER_INGRESS_LISTEN", str(d.ingress_listen)),
            public_url=public_url,
            channel_ttl_seconds=env.number(
                "NOTIFIER_CHANNEL_TTL_SECONDS",
                d.channel_ttl_seconds,
                minimum=60.0,
                maximum=MAX_CHANNEL_TTL_SECONDS,
            ),
            event_retention_seconds=env.number(
                "NOTIFIER_EVENT_RETENTION_SECONDS", d.event_retention_seconds,
                minimum=1.0, maximum=31_536_000.0,
            ),
            prune_interval_seconds=env.number(
                "NOTIFIER_PRUNE_INTERVAL_SECONDS", d.prune_interval_seconds,
                minimum=0.05, maximum=86400.0,
            ),
            poll_seconds=env.number(
                "NOTIFIER_EVENT_POLL_SECONDS", d.poll_seconds, minimum=0.01, maximum=60.0
            ),
            ingress_max_body_bytes=env.integer(
                "NOTIFIER_INGRESS_MAX_BODY_BYTES", d.ingress_max_body_bytes,
                minimum=1024, maximum=64 << 20,
            ),
            ingress_read_timeout_seconds=env.number(
                "NOTIFIER_INGRESS_READ_TIMEOUT_SECONDS", d.ingress_read_timeout_seconds,
                minimum=0.1, maximum=120.0,
            ),
            desk_jwks_url=jwks,
            max_subscriptions_per_user=env.integer(
                "NOTIFIER_MAX_SUBSCRIPTIONS_PER_USER", d.max_subscriptions_per_user,
                minimum=1, maximum=100_000,
            ),
            ingress_connections=_connection_limits(env),
            ingress_deliveries=_delivery_limits(env),
            consumers=ConsumersConfig.from_env(env),
        )


def _connection_limits(env: Env) -> ConnectionLimits:
    d = ConnectionLimits()
    return ConnectionLimits(
        header_timeout_seconds=env.number(
            "NOTIFIER_INGRESS_HEADER_TIMEOUT_SECONDS", d.header_timeout_seconds,
            minimum=0.1, maximum=300.0,
        ),
        idle_timeout_seconds=env.number(
            "NOTIFIER_INGRESS_IDLE_TIMEOUT_SECONDS", d.idle_timeout_seconds,
            minimum=0.1, maximum=3600.0,
        ),
        max_connections=env.integer(
            "NOTIFIER_INGRESS_MAX_CONNECTIONS", d.max_connections, minimum=1, maximum=1_000_000
        ),
        max_connections_per_peer=env.integer(
            "NOTIFIER_INGRESS_MAX_CONNECTIONS_PER_PEER", d.max_connections_per_peer,
            minimum=1, maximum=1_000_000,
        ),
    )


def _delivery_limits(env: Env) -> DeliveryLimits:
    d = DeliveryLimits()
    return DeliveryLimits(
        max_events=env.integer(
            "NOTIFIER_INGRESS_MAX_EVENTS_PER_DELIVERY", d.max_events, minimum=1, maximum=100_000
        ),
        max_fields_per_event=env.integer(
            "NOTIFIER_INGRESS_MAX_FIELDS_PER_EVENT", d.max_fields_per_event,
            minimum=1, maximum=1_000_000,
        ),
        max_values_bytes=env.integer(
            "NOTIFIER_INGRESS_MAX_VALUES_BYTES", d.max_values_bytes,
            minimum=1024, maximum=64 << 20,
        ),
        max_stored_bytes=env.integer(
            "NOTIFIER_INGRESS_MAX_STORED_BYTES_PER_DELIVERY", d.max_stored_bytes,
            minimum=1024, maximum=1 << 30,
        ),
    )


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try Zoho when it fails transiently (5xx, timeout, connection error)."""

    max_attempts: int = 3
    backoff_seconds: float = 0.2
    max_backoff_seconds: float = 2.0
    # Used when the caller set no deadline, and as a cap on any single request.
    request_timeout_seconds: float = 30.0
    # RetryInfo for a 429 that came without a Retry-After header.
    default_retry_after_seconds: float = 30.0


@dataclass(frozen=True)
class NotifierConfig:
    listen: ListenAddress = field(default_factory=lambda: ListenAddress("127.0.0.1", 50052))
    broker_target: str = "127.0.0.1:50051"
    extra_origins: tuple[str, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    broker_timeout_seconds: float = 10.0
    desk_org_ttl_seconds: float = 300.0
    health_interval_seconds: float = 5.0
    # On SIGTERM: health NOT_SERVING, then this long for calls in flight.
    grace_seconds: float = 5.0
    log_format: str = SharedSettings.log_format
    log_level: str = SharedSettings.log_level
    # Prometheus /metrics; None: off.
    metrics_listen: ListenAddress | None = None
    # TLS on the notifier's own port (NOTIFIER_TLS_*), and on its channel to the broker
    # with the certificate it presents there (NOTIFIER_BROKER_TLS_*).
    tls: ServerTls | None = None
    broker_tls: ClientTls | None = None
    # NOTIFIER_CALLER_POLICY as written ("" = the default); only applies under mutual TLS.
    caller_policy: str = ""
    # Caps on open streams and on how long one write may wait for its reader.
    streams: StreamLimits = field(default_factory=StreamLimits)
    events: EventsConfig = field(default_factory=EventsConfig)
    keeper: KeeperConfig = field(default_factory=KeeperConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)

    @property
    def metrics_port(self) -> int:
        """The metrics port, 0 when off (what NOTIFIER_METRICS_PORT, the older setting, holds)."""
        return self.metrics_listen.port if self.metrics_listen else 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NotifierConfig:
        env = Env(environ)
        d, r, s = cls(), RetryPolicy(), StreamLimits()
        shared = SharedSettings.from_env(env)
        listen = env.listen("NOTIFIER_LISTEN", str(d.listen))
        broker_target = env.text("NOTIFIER_BROKER_TARGET", d.broker_target)
        retry = RetryPolicy(
            max_attempts=env.integer(
                "NOTIFIER_ZOHO_MAX_ATTEMPTS", r.max_attempts, minimum=1, maximum=10
            ),
            backoff_seconds=env.number(
                "NOTIFIER_ZOHO_BACKOFF_SECONDS", r.backoff_seconds, minimum=0.0, maximum=30.0
            ),
            max_backoff_seconds=env.number(
                "NOTIFIER_ZOHO_MAX_BACKOFF_SECONDS", r.max_backoff_seconds,
                minimum=0.0, maximum=60.0,
            ),
            request_timeout_seconds=env.number(
                "NOTIFIER_ZOHO_TIMEOUT_SECONDS", r.request_timeout_seconds,
                minimum=0.1, maximum=600.0,
            ),
        )
        tls = ServerTls.from_env("NOTIFIER", env)
        policy = env.text("NOTIFIER_CALLER_POLICY")
        if policy and (tls is None or not tls.mutual):
            raise ConfigError("NOTIFIER_CALLER_POLICY",
                              "needs NOTIFIER_TLS_CLIENT_CA: without client certificates there "
                              "is no caller identity to apply it to")
        return cls(
            listen=listen,
            broker_target=broker_target,
            extra_origins=shared.extra_origins,
            retry=retry,
            broker_timeout_seconds=env.number(
                "NOTIFIER_BROKER_TIMEOUT_SECONDS", d.broker_timeout_seconds,
                minimum=0.1, maximum=600.0,
            ),
            desk_org_ttl_seconds=env.number(
                "NOTIFIER_DESK_ORG_TTL_SECONDS", d.desk_org_ttl_seconds,
                minimum=0.0, maximum=86400.0,
            ),
            health_interval_seconds=env.number(
                "NOTIFIER_HEALTH_INTERVAL_SECONDS", d.health_interval_seconds,
                minimum=0.05, maximum=3600.0,
            ),
            grace_seconds=env.number(
                "NOTIFIER_GRACE_SECONDS", d.grace_seconds, minimum=0.0, maximum=120.0
            ),
            log_format=shared.log_format,
            log_level=shared.log_level,
            metrics_listen=_metrics_listen(env, listen),
            tls=tls,
            caller_policy=policy,
            broker_tls=ClientTls.from_env("NOTIFIER_BROKER", env),
            streams=StreamLimits(
                max_streams=env.integer(
                    "NOTIFIER_MAX_STREAMS", s.max_streams, minimum=1, maximum=100_000
                ),
                max_streams_per_peer=env.integer(
                    "NOTIFIER_MAX_STREAMS_PER_PEER", s.max_streams_per_peer,
                    minimum=1, maximum=100_000,
                ),
                max_streams_per_address=env.integer(
                    "NOTIFIER_MAX_STREAMS_PER_ADDRESS", s.max_streams_per_address,
                    minimum=1, maximum=100_000,
                ),
                write_timeout_seconds=env.number(
                    "NOTIFIER_STREAM_WRITE_TIMEOUT_SECONDS", s.write_timeout_seconds,
                    minimum=0.05, maximum=3600.0,
                ),
            ),
            events=EventsConfig.from_env(env),
            keeper=KeeperConfig.from_env(env),
            capture=CaptureConfig.from_env(env),
        )


def _metrics_listen(env: Env, listen: ListenAddress) -> ListenAddress | None:
    """NOTIFIER_METRICS_LISTEN (HOST:PORT, as the broker's); else the older
    NOTIFIER_METRICS_PORT, on the gRPC listen host."""
    if env.text("NOTIFIER_METRICS_LISTEN"):
        return env.listen("NOTIFIER_METRICS_LISTEN", "")
    port = env.integer("NOTIFIER_METRICS_PORT", 0, minimum=0, maximum=65535)
    return ListenAddress(listen.host, port, "NOTIFIER_METRICS_PORT") if port else None
