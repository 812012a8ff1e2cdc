"""What change capture reads back and what it could not, as Prometheus metrics
(docs/operations.md says what to alert on)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RECOVERED = Counter(
    "notifier_capture_recovered_events_total",
    "Events read back because no callback brought them, by app, module and cause (sweep, "
    "start, gap, retry)",
    ["app", "module", "cause"],
)
READS = Counter(
    "notifier_capture_reads_total",
    "Window read-backs by app, cause (sweep, start, gap, retry) and outcome (read, "
    "skipped_low_credits, lost_lease, or the error reason that stopped one)",
    ["app", "cause", "outcome"],
)
CALLS = Counter(
    "notifier_capture_zoho_calls_total", "Read-back calls to Zoho, by org key", ["org"]
)
CREDITS = Counter(
    "notifier_capture_credits_total", "API credits read-backs spent, by org key", ["org"]
)
# What the shared ledger (credits.py) leaves of NOTIFIER_RECOVERY_CREDITS_PER_DAY in the
# rolling 24 hours: every replica publishes the same figure, so alerts take min over them.
CREDITS_REMAINING = Gauge(
    "notifier_capture_credits_remaining",
    "API credits read-backs may still spend in the rolling 24 hours, by org key",
    ["org"],
)
CREDITS_PER_DAY = Gauge(
    "notifier_capture_credits_per_day",
    "The read-back budget per org and rolling 24 hours (NOTIFIER_RECOVERY_CREDITS_PER_DAY)",
)
MALFORMED = Counter(
    "notifier_capture_malformed_records_total",
    "Records read back that could not be used (no id or no modified time), by app",
    ["app"],
)
LAG = Gauge(
    "notifier_capture_watermark_lag_seconds",
    "Now minus covered_until, per subscription (Zoho's clock)",
    ["subscription_id"],
)
MAX_LAG = Gauge(
    "notifier_capture_watermark_lag_max_seconds",
    "The largest now minus covered_until over every captured subscription, by app",
    ["app"],
)
OPEN_GAPS = Gauge(
    "notifier_capture_open_gap_windows",
    "Windows that could not be read back yet (announced as gap events), by reason",
    ["reason"],
)
