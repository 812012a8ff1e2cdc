"""What the ingress lets one connection and one delivery cost (NOTIFIER_INGRESS_*, read in
notifier/config.py; docs/security.md, "The ingress under attack")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConnectionLimits:
    # From accept (or a request's first byte) to a complete request head: slow headers.
    header_timeout_seconds: float = 10.0
    # Between requests on a kept-alive connection.
    idle_timeout_seconds: float = 30.0
    # Also never more than half the process's file limit (RLIMIT_NOFILE), so the ingress
    # alone cannot take the descriptors the database and gRPC need.
    max_connections: int = 1024
    # Per client address. Behind a proxy every connection has the proxy's address:
    # raise it to max_connections there.
    max_connections_per_peer: int = 128


@dataclass(frozen=True)
class DeliveryLimits:
    """What one verified delivery may expand to. Real ones are far below: a CRM callback
    names its changed fields once for all its records, a Desk batch is a few events."""

    max_events: int = 1000
    # Field names on one event (CRM `affected_fields`, the keys of Desk's `prevState`).
    max_fields_per_event: int = 2000
    # One event's values and previous values, as stored.
    max_values_bytes: int = 1 << 20
    # Everything one delivery stores: 8 times the default body cap.
    max_stored_bytes: int = 8 << 20
