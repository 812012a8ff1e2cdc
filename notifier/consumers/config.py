"""Consumers' settings (NOTIFIER_MAX_CONSUMERS, ...)."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.config import Env


@dataclass(frozen=True)
class ConsumersConfig:
    # Each consumer costs a row and, while it is pulled, leases; the cap keeps a
    # runaway caller from creating them without end.
    max_consumers: int = 1000
    # Acks wait this long at most to be written together (one transaction for many).
    ack_flush_seconds: float = 0.005
    # A Pull with room looks for redeliveries (a lease past its deadline, a nack on
    # another replica) at least this often; new events and local acks wake it at once.
    poll_seconds: float = 1.0
    # How often the backlog and oldest-unacked gauges are refreshed.
    metrics_seconds: float = 15.0

    @classmethod
    def from_env(cls, env: Env) -> ConsumersConfig:
        d = cls()
        return cls(
            max_consumers=env.integer(
                "NOTIFIER_MAX_CONSUMERS", d.max_consumers, minimum=1, maximum=1_000_000
            ),
            ack_flush_seconds=env.number(
                "NOTIFIER_CONSUMER_ACK_FLUSH_SECONDS", d.ack_flush_seconds,
                minimum=0.0, maximum=5.0,
            ),
            poll_seconds=env.number(
                "NOTIFIER_CONSUMER_POLL_SECONDS", d.poll_seconds, minimum=0.01, maximum=60.0
            ),
            metrics_seconds=env.number(
                "NOTIFIER_CONSUMER_METRICS_SECONDS", d.metrics_seconds,
                minimum=0.1, maximum=3600.0,
            ),
        )
