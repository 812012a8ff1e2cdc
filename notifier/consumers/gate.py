"""One claim at a time per consumer in this process, for all of its Pulls here together.

Claims of one consumer are serialised by its row lock anyway; so rather than each Pull
waiting its turn for a claim of its own, the Pulls waiting meanwhile are served by the
next claim together (their room added up, their acks applied at once) and share what it
leased in the order they asked. Four Pulls on a replica cost about one transaction per
round, not four."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from notifier.consumers.acks import AckBatcher
from notifier.consumers.claims import Claim, Claims, Settled
from notifier.consumers.store import ConsumerState

log = logging.getLogger(__name__)


@dataclass
class _Ask:
    want: int
    settled: Settled
    answer: asyncio.Future[Claim] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class ClaimGate:
    def __init__(
        self, consumer: ConsumerState, replica: str, *, claims: Claims, acks: AckBatcher,
        position: Callable[[], int], clock: Callable[[], datetime],
        on_acked: Callable[[str], None],
    ) -> None:
        """`position`: how far the log may be read (the tail's); `on_acked(consumer_id)`:
        acks were written (this replica's other Pulls may move on)."""
        self.consumer_id = consumer.id
        self._known = consumer  # as the last claim found it
        self.holder = f"{replica}-{uuid.uuid4().hex[:16]}"
        self._claims = claims
        self._acks = acks
        self._on_acked = on_acked
        self._position = position
        self._clock = clock
        self._waiting: list[_Ask] = []
        self._task: asyncio.Task[None] | None = None

    async def claim(self, want: int, settled: Settled) -> Claim:
        """Up to `want` events leased (fewer when there are not as many ready)."""
        ask = _Ask(want, settled)
        self._waiting.append(ask)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._serve())
        return await ask.answer

    async def _serve(self) -> None:
        while self._waiting:
            asks, self._waiting = self._waiting, []
            merged = Settled()
            for ask in asks:
                merged.acks.extend(ask.settled.acks)
                merged.nacks.extend(ask.settled.nacks)
            # Everything this consumer's Pulls hold unsent here goes with this claim too.
            taken = self._acks.take(self.consumer_id)
            merged.acks.extend(taken.acks)
            merged.nacks.extend(taken.nacks)
            try:
                claim = await self._claims.claim(
                    self.consumer_id, holder=self.holder, want=sum(a.want for a in asks),
                    through=self._position(), now=self._clock(), settled=merged,
                    known=self._known,
                )
            except Exception as failed:
                for ask in asks:
                    if not ask.answer.done():
                        ask.answer.set_exception(failed)
                continue
            self._known = claim.consumer
            self._acks.record(claim.acked, claim.unknown_acks)
            if claim.acked:
                self._on_acked(self.consumer_id)
            start = 0
            for ask in asks:
                part = claim.leased[start:start + ask.want]
                start += len(part)
                if not ask.answer.done():
                    ask.answer.set_result(replace(claim, leased=part))
