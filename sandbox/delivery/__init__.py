"""Outbound callbacks to subscribers: lanes, delivery faults, what was delivered."""
