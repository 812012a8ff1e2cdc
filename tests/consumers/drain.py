"""Draining a consumer with several Pull streams that ack as they go, and checking what
came: every event at least once, duplicates, and each record's order. Shared by the
PostgreSQL replica tests and bench/consumers.py."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc

from notifier.database import DATABASE
from notifier.events.open_log import open_event_log
from tests.consumers.helpers import new_event
from zoho.notifier.v1 import notifier_pb2


@dataclass(frozen=True)
class Reception:
    cursor: str
    record: str
    attempts: int
    at: float
    pull: int


async def seed(database_url: str, count: int, records: int, batch: int = 1000) -> int:
    """`count` events over `records` records, appended as the writer does (one commit
    per batch; on PostgreSQL NOTIFY wakes every replica). Returns the newest cursor."""
    engine = DATABASE.make_async_engine(database_url)
    log = open_event_log(engine)
    conn = await log.writer_connection()
    newest = 0
    try:
        for start in range(0, count, batch):
            events = [new_event(f"r{i % records}") for i in range(start, min(count, start + batch))]
            stored = await log.append(events, datetime.now(UTC), conn)
            newest = max([newest, *[item.cursor for item in stored]])
    finally:
        await conn.close()
        await engine.dispose()
    return newest


@dataclass
class DrainingPull:
    """A Pull that acks each response's events as soon as it has them (once `gate` is
    set, when there is one: holding acks keeps this stream's share outstanding)."""

    stub: Any
    consumer_id: str
    number: int
    max_outstanding: int = 100
    gate: asyncio.Event | None = None
    received: list[Reception] = field(default_factory=list)
    error: grpc.aio.AioRpcError | None = None

    def start(self) -> asyncio.Task[None]:
        return asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        call = self.stub.Pull()
        try:
            await call.write(notifier_pb2.PullRequest(
                consumer_id=self.consumer_id, max_outstanding=self.max_outstanding))
            async for response in call:
                now = time.monotonic()
                for event, attempts in zip(response.events, response.delivery_attempts,
                                           strict=True):
                    self.received.append(
                        Reception(event.cursor, event.record_id, attempts, now, self.number))
                if self.gate is not None:
                    await self.gate.wait()
                await call.write(notifier_pb2.PullRequest(
                    ack_cursors=[event.cursor for event in response.events]))
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.error = error
        except (asyncio.InvalidStateError, grpc.aio.UsageError):
            pass  # the stream went away under a write
        finally:
            call.cancel()


@dataclass
class Verdict:
    delivered: int
    lost: int
    duplicates: int
    duplicates_not_outstanding: int
    order_breaks: int


def judge(receptions: list[Reception], expected: set[str], outstanding_at_kill: set[str]
          ) -> Verdict:
    """Lost: expected cursors never received. Duplicates: receptions past the first.
    An order break: a record's event received after a later event of that record was
    (by reception time), beyond a redelivery of the one event in between."""
    seen: dict[str, int] = {}
    for item in receptions:
        seen[item.cursor] = seen.get(item.cursor, 0) + 1
    duplicates = [c for c, n in seen.items() if n > 1]
    breaks = 0
    newest: dict[str, str] = {}
    for item in sorted(receptions, key=lambda r: r.at):
        last = newest.get(item.record)
        if last is not None and item.cursor < last:
            breaks += 1
        if last is None or item.cursor > last:
            newest[item.record] = item.cursor
    return Verdict(
        delivered=len(seen),
        lost=len(expected - set(seen)),
        duplicates=sum(seen[c] - 1 for c in duplicates),
        duplicates_not_outstanding=len(set(duplicates) - outstanding_at_kill),
        order_breaks=breaks,
    )
