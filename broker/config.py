"""The broker's configuration, read once from the environment at start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from broker.storage.tables import DATABASE
from servicekit.config import ConfigError, Env, ListenAddress, SharedSettings
from servicekit.tls import ServerTls

DEFAULT_DATABASE_URL = "sqlite:///zoho_broker.db"


@dataclass(frozen=True)
class BrokerConfig:
    listen: ListenAddress
    database_url: str
    encryption_keys: str
    client_id: str
    client_secret: str
    extra_origins: list[str]
    # A token expiring sooner than this is refreshed before it is handed out (callers wait).
    refresh_window_seconds: int
    # A token expiring sooner than this is handed out and refreshed in the background.
    soft_refresh_seconds: int
    # How stale the in-memory copy of a connection may be before it is re-read:
    # bounds how long another replica's delete or re-consent takes to be seen here.
    cache_seconds: float
    # Zoho allows 10 new access tokens per refresh token per 10 minutes; we never ask more.
    mint_budget: int
    mint_budget_window_seconds: int
    # A crashed refresher's lease lapses after this long, so another replica takes over.
    lease_seconds: float
    zoho_timeout_seconds: float
    zoho_max_attempts: int
    grace_seconds: float
    metrics_listen: ListenAddress | None
    log_format: str
    log_level: str
    # TLS on the gRPC port; mutual when it holds a client CA (BROKER_TLS_*).
    tls: ServerTls | None = None
    # BROKER_CALLER_POLICY as written ("" = the default); only applies under mutual TLS.
    caller_policy: str = ""

    @classmethod
    def from_env(cls, env: Env | None = None) -> BrokerConfig:
        env = env or Env()
        shared = SharedSettings.from_env(env)
        window = env.integer("BROKER_REFRESH_WINDOW_SECONDS", 120, minimum=0, maximum=3000)
        soft = env.integer("BROKER_SOFT_REFRESH_SECONDS", max(300, window), minimum=0, maximum=3300)
        if soft < window:
            raise ConfigError(
                "BROKER_SOFT_REFRESH_SECONDS",
                f"must be at least BROKER_REFRESH_WINDOW_SECONDS ({window}), got {soft}",
            )
        metrics = env.text("BROKER_METRICS_LISTEN")
        tls = ServerTls.from_env("BROKER", env)
        policy = env.text("BROKER_CALLER_POLICY")
        if policy and (tls is None or not tls.mutual):
            raise ConfigError("BROKER_CALLER_POLICY",
                              "needs BROKER_TLS_CLIENT_CA: without client certificates there is "
                              "no caller identity to apply it to")
        return cls(
            listen=env.listen("BROKER_LISTEN", "127.0.0.1:50051"),
            database_url=env.text("BROKER_DATABASE_URL", DEFAULT_DATABASE_URL),
            encryption_keys=env.text("BROKER_ENCRYPTION_KEY"),
            client_id=env.text("ZOHO_CLIENT_ID"),
            client_secret=env.text("ZOHO_CLIENT_SECRET"),
            extra_origins=list(shared.extra_origins),
            refresh_window_seconds=window,
            soft_refresh_seconds=soft,
            cache_seconds=env.number("BROKER_CACHE_SECONDS", 1.0, minimum=0.0, maximum=60.0),
            mint_budget=env.integer("BROKER_MINT_BUDGET", 10, minimum=1, maximum=10),
            # Zoho's window is 10 minutes; production keeps 600. Shorter only for benchmarks
            # that compress an hour of token lifetimes into a couple of minutes.
            mint_budget_window_seconds=env.integer(
                "BROKER_MINT_BUDGET_WINDOW_SECONDS", 600, minimum=1, maximum=3600
            ),
            lease_seconds=env.number("BROKER_LEASE_SECONDS", 10.0, minimum=1.0, maximum=120.0),
            zoho_timeout_seconds=env.number(
                "BROKER_ZOHO_TIMEOUT_SECONDS", 5.0, minimum=0.1, maximum=60.0
            ),
            zoho_max_attempts=env.integer("BROKER_ZOHO_MAX_ATTEMPTS", 3, minimum=1, maximum=10),
            grace_seconds=env.number("BROKER_GRACE_SECONDS", 5.0, minimum=0.0, maximum=120.0),
            metrics_listen=env.listen("BROKER_METRICS_LISTEN", metrics) if metrics else None,
            log_format=shared.log_format,
            log_level=shared.log_level,
            tls=tls,
            caller_policy=policy,
        )

    def require_client(self) -> None:
        for name, value in (("ZOHO_CLIENT_ID", self.client_id),
                            ("ZOHO_CLIENT_SECRET", self.client_secret)):
            if not value:
                raise ConfigError(name, "required: the Zoho OAuth client the broker refreshes with")

    @property
    def sqlite_path(self) -> Path | None:
        """The database file, when the database is an SQLite file."""
        return DATABASE.sqlite_file(self.database_url)
