"""What the keeper does and what it could not, as Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SUBSCRIPTIONS = Gauge(
    "notifier_subscriptions", "Subscriptions kept, by status", ["app", "status"]
)
RENEWALS = Counter(
    "notifier_keeper_renewals_total",
    "CRM channel renewals, by outcome (renewed, already_renewed, recreated, retry, failing, "
    "reauth_required, lost_lease)",
    ["outcome"],
)
REPAIRS = Counter(
    "notifier_keeper_repairs_total",
    "Subscriptions put back as they should be after a reconcile, by app and what was wrong "
    "(missing, disabled, changed, expiry_moved) and outcome",
    ["app", "problem", "outcome"],
)
RECONCILES = Counter(
    "notifier_keeper_reconciles_total", "Per-user reconciles, by outcome", ["app", "outcome"]
)
NEXT_EXPIRY = Gauge(
    "notifier_keeper_next_expiry_seconds",
    "Seconds until the earliest CRM channel expiry (negative: one has lapsed)",
)
IN_FLIGHT = Gauge("notifier_keeper_zoho_calls_in_flight", "Keeper calls to Zoho in flight")
PEAK_IN_FLIGHT = Gauge(
    "notifier_keeper_zoho_calls_in_flight_peak", "Most keeper calls to Zoho in flight at once"
)
