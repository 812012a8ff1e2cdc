"""The notifier's configuration, read once from the environment at start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from notifier.database import DATABASE
from notifier.database import DEFAULT_URL as DEFAULT_DATABASE_URL
from notifier.keeper.config import KeeperConfig
from servicekit.config import ConfigError, Env, ListenAddress
from servicekit.origins import OriginPolicy
from servicekit.tls import ClientTls, ServerTls

SERVICE_NAME = "zoho.notifier.v1.NotifierService"
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
        database_url = env.text("NOTIFIER_DATABASE_URL", DEFAULT_DATABASE_URL)
        DATABASE.parse(database_url)
        return cls(
            database_url=database_url,
            encryption_key=env.text("NOTIFIER_ENCRYPTION_KEY", ""),
            ingress_listen=env.listen("NOTIFIER_INGRESS_LISTEN", "127.0.0.1:8781"),
            public_url=public_url,
            channel_ttl_seconds=env.number(
                "NOTIFIER_CHANNEL_TTL_SECONDS",
                MAX_CHANNEL_TTL_SECONDS,
                minimum=60.0,
                maximum=MAX_CHANNEL_TTL_SECONDS,
            ),
            event_retention_seconds=env.number(
                "NOTIFIER_EVENT_RETENTION_SECONDS", 604800.0, minimum=1.0, maximum=31_536_000.0
            ),
            prune_interval_seconds=env.number(
                "NOTIFIER_PRUNE_INTERVAL_SECONDS", 60.0, minimum=0.05, maximum=86400.0
            ),
            poll_seconds=env.number(
                "NOTIFIER_EVENT_POLL_SECONDS", 0.5, minimum=0.01, maximum=60.0
            ),
            ingress_max_body_bytes=env.integer(
                "NOTIFIER_INGRESS_MAX_BODY_BYTES", 1024 * 1024, minimum=1024, maximum=64 << 20
            ),
            ingress_read_timeout_seconds=env.number(
                "NOTIFIER_INGRESS_READ_TIMEOUT_SECONDS", 5.0, minimum=0.1, maximum=120.0
            ),
            desk_jwks_url=jwks,
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
    log_format: str = "text"
    log_level: str = "INFO"
    metrics_port: int = 0
    # TLS on the notifier's own port (NOTIFIER_TLS_*), and on its channel to the broker
    # with the certificate it presents there (NOTIFIER_BROKER_TLS_*).
    tls: ServerTls | None = None
    broker_tls: ClientTls | None = None
    events: EventsConfig = field(default_factory=EventsConfig)
    keeper: KeeperConfig = field(default_factory=KeeperConfig)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NotifierConfig:
        env = Env(environ)
        extra = tuple(env.items("ZOHO_EXTRA_ORIGINS"))
        try:
            OriginPolicy(list(extra))
        except ValueError as exc:
            raise ConfigError("ZOHO_EXTRA_ORIGINS", str(exc)) from None
        log_format = env.text("LOG_FORMAT", "text").lower()
        if log_format not in ("text", "json"):
            raise ConfigError("LOG_FORMAT", f"expected text or json, got {log_format!r}")
        log_level = env.text("LOG_LEVEL", "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError("LOG_LEVEL", f"expected DEBUG, INFO, WARNING or ERROR: {log_level!r}")
        broker_target = env.text("NOTIFIER_BROKER_TARGET", "127.0.0.1:50051")
        retry = RetryPolicy(
            max_attempts=env.integer("NOTIFIER_ZOHO_MAX_ATTEMPTS", 3, minimum=1, maximum=10),
            backoff_seconds=env.number(
                "NOTIFIER_ZOHO_BACKOFF_SECONDS", 0.2, minimum=0.0, maximum=30.0
            ),
            max_backoff_seconds=env.number(
                "NOTIFIER_ZOHO_MAX_BACKOFF_SECONDS", 2.0, minimum=0.0, maximum=60.0
            ),
            request_timeout_seconds=env.number(
                "NOTIFIER_ZOHO_TIMEOUT_SECONDS", 30.0, minimum=0.1, maximum=600.0
            ),
        )
        return cls(
            listen=env.listen("NOTIFIER_LISTEN", "127.0.0.1:50052"),
            broker_target=broker_target,
            extra_origins=extra,
            retry=retry,
            broker_timeout_seconds=env.number(
                "NOTIFIER_BROKER_TIMEOUT_SECONDS", 10.0, minimum=0.1, maximum=600.0
            ),
            desk_org_ttl_seconds=env.number(
                "NOTIFIER_DESK_ORG_TTL_SECONDS", 300.0, minimum=0.0, maximum=86400.0
            ),
            health_interval_seconds=env.number(
                "NOTIFIER_HEALTH_INTERVAL_SECONDS", 5.0, minimum=0.05, maximum=3600.0
            ),
            log_format=log_format,
            log_level=log_level,
            metrics_port=env.integer("NOTIFIER_METRICS_PORT", 0, minimum=0, maximum=65535),
            tls=ServerTls.from_env("NOTIFIER", env),
            broker_tls=ClientTls.from_env("NOTIFIER_BROKER", env),
            events=EventsConfig.from_env(env),
            keeper=KeeperConfig.from_env(env),
        )
