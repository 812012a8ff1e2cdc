"""One Pull stream: flow control by max_outstanding, leases claimed from the database,
acks and nacks recorded as they arrive, and wake-ups (the log tail's new events, local
acks, the earliest lease deadline, a poll for other replicas' nacks).

A Pull whose caller half-closes its side is done: its acks and nacks are written, it is
sent nothing more, and it ends OK. A Pull that ends leaves what it was sent and did not
settle leased until each ack deadline: ack it from any other Pull of the consumer
meanwhile (acks name cursors, not streams), or it is delivered again after the deadline.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from notifier.consumers import metrics
from notifier.consumers.acks import AckBatcher
from notifier.consumers.claims import Claims
from notifier.consumers.gate import ClaimGate
from notifier.consumers.store import ConsumerState
from notifier.events.tail import LogTail
from notifier.events.wire import pull_response

_REPLICA = f"{socket.gethostname()[:30]}-{os.getpid()}"


class Registry:
    """This replica's open Pulls by consumer, to wake them when something changes, and
    one ClaimGate per consumer they share."""

    def __init__(self, claims: Claims, acks: AckBatcher, tail: LogTail,
                 clock: Callable[[], datetime]) -> None:
        self._claims = claims
        self._acks = acks
        self._tail = tail
        self._clock = clock
        self._by_consumer: dict[str, set[PullSession]] = {}
        self._gates: dict[str, ClaimGate] = {}

    def add(self, session: PullSession, consumer: ConsumerState) -> ClaimGate:
        self._by_consumer.setdefault(session.consumer_id, set()).add(session)
        metrics.PULLS.inc()
        gate = self._gates.get(session.consumer_id)
        if gate is None:
            gate = self._gates[session.consumer_id] = ClaimGate(
                consumer, _REPLICA, claims=self._claims, acks=self._acks,
                position=lambda: self._tail.position, clock=self._clock, on_acked=self.wake,
            )
        return gate

    def remove(self, session: PullSession) -> None:
        sessions = self._by_consumer.get(session.consumer_id)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._by_consumer[session.consumer_id]
                self._gates.pop(session.consumer_id, None)
        metrics.PULLS.dec()

    def wake(self, consumer_id: str) -> None:
        for session in self._by_consumer.get(consumer_id, ()):
            session.wake.set()


class PullSession:
    def __init__(
        self,
        consumer: ConsumerState,
        max_outstanding: int,
        *,
        acks: AckBatcher,
        tail: LogTail,
        registry: Registry,
        poll_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.consumer_id = consumer.id
        self._generation = consumer.generation
        self._max = max_outstanding
        # cursor -> (generation delivered in, monotonic deadline)
        self._outstanding: dict[int, tuple[int, float]] = {}
        self._acks = acks
        self._tail = tail
        self._registry = registry
        self._poll = poll_seconds
        self._clock = clock
        self.wake = asyncio.Event()
        self._half_closed = False
        self._draining = False
        self._nudge = tail.subscribe(consumer.filter, wake=self.wake.set)
        self._gate = registry.add(self, consumer)

    def close(self) -> None:
        self._tail.unsubscribe(self._nudge)
        self._registry.remove(self)

    def settle(self, acks: list[int], nacks: list[int]) -> None:
        """Acks and nacks from the caller: room at once, written with the next claim."""
        if not acks and not nacks:
            return
        marked_acks = [(cursor, self._forget(cursor)) for cursor in acks]
        marked_nacks = [(cursor, self._forget(cursor)) for cursor in nacks]
        self._acks.add(self.consumer_id, marked_acks, marked_nacks)
        self.wake.set()

    def drain(self) -> None:
        """Nothing more is sent on this stream."""
        self._draining = True
        self.wake.set()

    def half_closed(self) -> None:
        self._half_closed = True
        self.wake.set()

    def _forget(self, cursor: int) -> int | None:
        held = self._outstanding.pop(cursor, None)
        return None if held is None else held[0]

    def _drop_expired(self, now: float) -> float | None:
        """Leases past their deadline no longer take room; the earliest one left."""
        expired = [c for c, (_, deadline) in self._outstanding.items() if deadline <= now]
        for cursor in expired:
            del self._outstanding[cursor]
        return min((d for _, d in self._outstanding.values()), default=None)

    async def responses(self) -> AsyncIterator[bytes]:
        """Serialized PullResponses until the caller half-closes (NotFound once the
        consumer is deleted)."""
        while True:
            self.wake.clear()
            closing = self._half_closed
            own_deadline = self._drop_expired(time.monotonic())
            want = 0 if closing or self._draining else self._max - len(self._outstanding)
            settled = self._acks.take(self.consumer_id)
            wait = self._poll
            if want > 0 or settled:
                now = self._clock()
                claim = await self._gate.claim(max(want, 0), settled)
                if claim.consumer.generation != self._generation:
                    # Sought: what this stream held is forgotten with its deliveries.
                    self._generation = claim.consumer.generation
                    self._outstanding.clear()
                if claim.leased:
                    deadline = time.monotonic() + claim.consumer.ack_deadline_seconds
                    for item in claim.leased:
                        self._outstanding[item.cursor] = (self._generation, deadline)
                    redelivered = sum(1 for item in claim.leased if item.attempts > 1)
                    metrics.DELIVERED.labels("redelivery").inc(redelivered)
                    metrics.DELIVERED.labels("first").inc(len(claim.leased) - redelivered)
                    yield pull_response(
                        [item.wire for item in claim.leased],
                        [item.attempts for item in claim.leased],
                    )
                    continue
                if claim.more:
                    continue  # more to read: no wake-up would come for it
                if claim.next_deadline is not None:
                    until = (claim.next_deadline - now).total_seconds()
                    wait = min(wait, max(until, 0.0) + 0.01)
            if closing:
                return
            if own_deadline is not None:
                wait = min(wait, max(own_deadline - time.monotonic(), 0.0) + 0.01)
            if not self.wake.is_set():
                try:
                    async with asyncio.timeout(wait):
                        await self.wake.wait()
                except TimeoutError:
                    pass
