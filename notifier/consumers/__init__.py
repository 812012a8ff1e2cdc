"""Consumers: named positions in the event log held by the notifier, with acks, leased
redelivery, competing Pull streams and per-record order (SPEC "Consumers")."""
