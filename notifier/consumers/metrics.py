"""Consumers' Prometheus metrics (names as the keeper's: notifier_<part>_<what>)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

BACKLOG = Gauge(
    "notifier_consumer_backlog",
    "Events matching the consumer's filters not yet acknowledged, delivered or not",
    ["consumer"],
)
OLDEST_UNACKED_AGE = Gauge(
    "notifier_consumer_oldest_unacked_age_seconds",
    "Age of the consumer's oldest unacknowledged event (0: none)",
    ["consumer"],
)
DELIVERED = Counter(
    "notifier_consumer_delivered_total",
    "Events handed to Pull streams, by first delivery or redelivery",
    ["kind"],
)
ACKED = Counter("notifier_consumer_acked_total", "Acks that closed an open delivery")
UNKNOWN_ACKS = Counter(
    "notifier_consumer_unknown_acks_total",
    "Acks of cursors with no open delivery (never given, acked already, sought past): ignored",
)
NACKED = Counter("notifier_consumer_nacked_total", "Nacks received")
EXPIRED = Counter(
    "notifier_consumer_expired_total",
    "Events retention pruned before their consumer acknowledged them",
)
PULLS = Gauge("notifier_consumer_pulls_open", "Pull streams open on this replica")
