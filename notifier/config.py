"""The notifier's configuration, read once from the environment at start."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from servicekit.config import ConfigError, Env, ListenAddress
from servicekit.origins import OriginPolicy
from servicekit.streams import StreamLimits
from servicekit.tls import ClientTls, ServerTls

SERVICE_NAME = "zoho.notifier.v1.NotifierService"


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
    # Caps on open streams and on how long one write may wait for its reader.
    streams: StreamLimits = field(default_factory=StreamLimits)

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
            streams=StreamLimits(
                max_streams=env.integer("NOTIFIER_MAX_STREAMS", 500, minimum=1, maximum=100_000),
                max_streams_per_peer=env.integer(
                    "NOTIFIER_MAX_STREAMS_PER_PEER", 100, minimum=1, maximum=100_000
                ),
                write_timeout_seconds=env.number(
                    "NOTIFIER_STREAM_WRITE_TIMEOUT_SECONDS", 30.0, minimum=0.05, maximum=3600.0
                ),
            ),
        )
