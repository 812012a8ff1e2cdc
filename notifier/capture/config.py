"""Change capture's settings: NOTIFIER_SWEEP_SECONDS and NOTIFIER_RECOVERY_CREDITS_PER_DAY
(SPEC), and the tuning that stays at its defaults outside tests."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.config import ConfigError, Env


@dataclass(frozen=True)
class CaptureConfig:
    # NOTIFIER_CAPTURE=off: callbacks only, gaps announced as before (no read-back).
    enabled: bool = True
    # How often each active subscription is read back for changes no callback brought;
    # 0: no periodic sweep (gaps and the notifier's own downtime are still read back).
    sweep_seconds: float = 900.0
    credits_per_day: int = 5000
    # The newest seconds are never read (nor claimed by the watermark): a change made in
    # them may still get its callback, and Zoho's clock and ours may differ a little.
    settle_seconds: float = 10.0
    # Below this X-API-CREDITS-REMAINING, sweeps stop and only gap windows are read.
    sweep_floor_credits: int = 500
    # How often due windows are looked for (real seconds), how many are read at once by
    # this replica, and how long a claim holds before another replica may take it over.
    tick_seconds: float = 1.0
    concurrency: int = 4
    lease_seconds: float = 120.0
    # Retries of a window that failed: doubling from the first, at most the last.
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 1800.0
    # A transient failure (5xx, timeouts, a bare 429) is announced as a gap after this
    # many attempts; a refusal (scope, credits, Zoho's 4xx) at once.
    transient_attempts: int = 3

    @classmethod
    def from_env(cls, env: Env) -> CaptureConfig:
        d = cls()
        enabled = env.text("NOTIFIER_CAPTURE", "on").lower()
        if enabled not in ("on", "off"):
            raise ConfigError("NOTIFIER_CAPTURE", f"expected on or off, got {enabled!r}")
        # SPEC: any value from 1 up. The bound is only there so that the time arithmetic
        # cannot overflow (or take "inf"): about 31 years.
        sweep = env.number(
            "NOTIFIER_SWEEP_SECONDS", d.sweep_seconds, minimum=0.0, maximum=1e9
        )
        if 0 < sweep < 1:
            raise ConfigError("NOTIFIER_SWEEP_SECONDS", "expected 0 (off) or at least 1")
        return cls(
            enabled=enabled == "on",
            sweep_seconds=sweep,
            credits_per_day=env.integer(
                "NOTIFIER_RECOVERY_CREDITS_PER_DAY", d.credits_per_day, minimum=0,
                maximum=10_000_000,
            ),
            settle_seconds=env.number(
                "NOTIFIER_CAPTURE_SETTLE_SECONDS", d.settle_seconds, minimum=1.0, maximum=3600.0
            ),
            tick_seconds=env.number(
                "NOTIFIER_CAPTURE_TICK_SECONDS", d.tick_seconds, minimum=0.01, maximum=600.0
            ),
            lease_seconds=env.number(
                "NOTIFIER_CAPTURE_LEASE_SECONDS", d.lease_seconds, minimum=1.0, maximum=86400.0
            ),
            retry_base_seconds=env.number(
                "NOTIFIER_CAPTURE_RETRY_SECONDS", d.retry_base_seconds, minimum=0.01,
                maximum=86400.0,
            ),
        )
