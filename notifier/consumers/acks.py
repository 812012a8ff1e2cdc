"""Acks are cheap: a Pull only records them here. They are written together, either by
the next claim of their consumer (which applies them in its own transaction) or, when
none comes soon, by one flush every NOTIFIER_CONSUMER_ACK_FLUSH_SECONDS for every
consumer at once. An ack held here when the process dies is lost, and its event is
delivered again: at least once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from notifier.consumers import metrics
from notifier.consumers.claims import Claims, Settled
from servicekit.background import BackgroundTask

log = logging.getLogger(__name__)

# Past this many held acks a flush starts at once rather than after the interval.
FLUSH_AT = 1000


class AckBatcher:
    def __init__(
        self, claims: Claims, *, interval: float, on_settled: Callable[[str], None]
    ) -> None:
        """`on_settled(consumer_id)`: its acks were written (local Pulls may move on)."""
        self._claims = claims
        self._interval = interval
        self._on_settled = on_settled
        self._held: dict[str, Settled] = {}
        self._count = 0
        self._kick = asyncio.Event()
        self._task = BackgroundTask("consumer-acks")

    def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()
        await self.flush()

    def add(self, consumer_id: str, acks: list[tuple[int, int | None]],
            nacks: list[tuple[int, int | None]]) -> None:
        held = self._held.setdefault(consumer_id, Settled())
        held.acks.extend(acks)
        held.nacks.extend(nacks)
        metrics.NACKED.inc(len(nacks))
        self._count += len(acks) + len(nacks)
        self._kick.set()

    def take(self, consumer_id: str) -> Settled:
        """What is held for `consumer_id`, for a claim to apply in its transaction."""
        held = self._held.pop(consumer_id, None) or Settled()
        self._count -= len(held.acks) + len(held.nacks)
        return held

    def record(self, acked: int, unknown: int) -> None:
        metrics.ACKED.inc(acked)
        metrics.UNKNOWN_ACKS.inc(unknown)

    async def flush(self) -> None:
        held, self._held, self._count = self._held, {}, 0
        if not held:
            return
        try:
            acked, unknown = await self._claims.settle(held)
        except Exception as failed:  # the database may be down: the acks come back
            log.warning("writing %d consumers' acks failed: %s", len(held),
                        type(failed).__name__)
            for consumer_id, settled in held.items():
                mine = self._held.setdefault(consumer_id, Settled())
                mine.acks[:0] = settled.acks
                mine.nacks[:0] = settled.nacks
                self._count += len(settled.acks) + len(settled.nacks)
            raise
        self.record(acked, unknown)
        for consumer_id in held:
            self._on_settled(consumer_id)

    async def _run(self) -> None:
        while True:
            await self._kick.wait()
            if self._count < FLUSH_AT:
                await asyncio.sleep(self._interval)
            self._kick.clear()
            try:
                await self.flush()
            except Exception:  # logged in flush; wait a little before trying again
                await asyncio.sleep(0.5)
                self._kick.set()
