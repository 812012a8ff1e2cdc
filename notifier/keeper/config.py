"""The keeper's settings (NOTIFIER_RENEW_BEFORE_SECONDS, NOTIFIER_RECONCILE_SECONDS, ...)."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.config import ConfigError, Env

# CRM allows 5 (Free) to 20 (Enterprise) concurrent calls per org; the edition is not
# known here, so by default each replica sends one call per user at a time and at most
# this many in all.
DEFAULT_CONCURRENCY = 4


@dataclass(frozen=True)
class KeeperConfig:
    enabled: bool = True
    renew_before_seconds: float = 172800.0
    reconcile_seconds: float = 3600.0
    # How often due work is looked for (real seconds).
    tick_seconds: float = 1.0
    concurrency: int = DEFAULT_CONCURRENCY
    # How long a claim holds: a replica killed mid-renewal is taken over after this.
    lease_seconds: float = 30.0
    # A blocked user (REAUTH_REQUIRED, MISSING_SCOPE) is re-asked at the broker, never at
    # Zoho, this often.
    blocked_probe_seconds: float = 60.0
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    # How long one call to Zoho may take: a write of up to 100 channels, a whole listing
    # of a user's channels or webhooks, a webhook's create or update.
    zoho_call_seconds: float = 60.0
    # How long asking the broker whether a blocked user's connection works may take.
    grant_check_seconds: float = 30.0
    # Tests and benchmarks only: a URL answering {"now": epoch seconds} (the sandbox's
    # /_sandbox/clock), so compressed time is the same for the keeper and "Zoho".
    clock_url: str = ""

    @classmethod
    def from_env(cls, env: Env) -> KeeperConfig:
        clock_url = env.text("NOTIFIER_KEEPER_CLOCK_URL", "")
        if clock_url and not clock_url.startswith(("http://", "https://")):
            raise ConfigError("NOTIFIER_KEEPER_CLOCK_URL", "expected an http(s) URL")
        enabled = env.text("NOTIFIER_KEEPER", "on").lower()
        if enabled not in ("on", "off"):
            raise ConfigError("NOTIFIER_KEEPER", f"expected on or off, got {enabled!r}")
        return cls(
            enabled=enabled == "on",
            renew_before_seconds=env.number(
                "NOTIFIER_RENEW_BEFORE_SECONDS", 172800.0, minimum=60.0, maximum=604800.0
            ),
            reconcile_seconds=env.number(
                "NOTIFIER_RECONCILE_SECONDS", 3600.0, minimum=1.0, maximum=604800.0
            ),
            tick_seconds=env.number(
                "NOTIFIER_KEEPER_TICK_SECONDS", 1.0, minimum=0.01, maximum=600.0
            ),
            concurrency=env.integer(
                "NOTIFIER_KEEPER_CONCURRENCY", DEFAULT_CONCURRENCY, minimum=1, maximum=20
            ),
            lease_seconds=env.number(
                "NOTIFIER_KEEPER_LEASE_SECONDS", 30.0, minimum=0.5, maximum=86400.0
            ),
            blocked_probe_seconds=env.number(
                "NOTIFIER_KEEPER_BLOCKED_PROBE_SECONDS", 60.0, minimum=0.1, maximum=86400.0
            ),
            retry_base_seconds=env.number(
                "NOTIFIER_KEEPER_RETRY_SECONDS", 30.0, minimum=0.01, maximum=86400.0
            ),
            retry_max_seconds=env.number(
                "NOTIFIER_KEEPER_RETRY_MAX_SECONDS", 3600.0, minimum=0.01, maximum=86400.0
            ),
            clock_url=clock_url,
        )
