"""Bounds on server streams: how many may be open (per HTTP/2 connection and in all), and
how long one write may wait for a consumer that does not read.

A stream whose client never drains its flow-control window holds whatever the handler
had in hand (pages of Zoho answers) for as long as the connection lives. `StreamSlots`
caps how many such streams there can be; `BoundedWrites` ends a stream whose write has
not been taken by the transport within `write_timeout` seconds. Waiting for data to send
is not stalling: only a write in progress is timed, so a live stream with nothing to say
can stay open for hours.

The interceptor in servicekit/calls.py applies both to every server stream of a service
given `StreamLimits`, so a new streaming RPC is bounded without code of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc

from servicekit import metrics
from servicekit.error_status import refuse
from servicekit.errors import ConsumerStalled, ServiceError, TooManyStreams

# With every slot taken, a write stuck this long marks its reader as stalled.
PREEMPT_AFTER_SECONDS = 1.0


@dataclass(frozen=True)
class StreamLimits:
    # A stalled stream holds about two Zoho pages (~0.35 MB for CRM's 200-item pages):
    # 500 of them stay well under 300 MB. 100 a connection is HTTP/2's usual stream cap.
    max_streams: int = 500
    max_streams_per_peer: int = 100
    write_timeout_seconds: float = 30.0
    # Per client address, over all its connections: each connection costs gRPC ~30 KB
    # and a stalled stream on it ~30 KB more until it closes, so one host opening a
    # connection per stalled stream must not also get every stream slot.
    max_streams_per_address: int = 200


def peer_address(peer: str) -> str:
    """gRPC's peer (`ipv4:10.0.0.1:53122`, `ipv6:[::1]:53122`) without its port."""
    host, sep, port = peer.rpartition(":")
    return host if sep and port.isdigit() else peer


class StreamSlots:
    """Open streams, counted in all and per peer (gRPC's peer names one HTTP/2 connection:
    address and the client's port).

    With every slot taken, a new stream ends the stream whose write has waited longest,
    if it has waited `PREEMPT_AFTER_SECONDS` at least: a reader that stopped reading does
    not keep out one that reads. Only when every open stream is moving is a caller refused.
    """

    def __init__(self, limits: StreamLimits) -> None:
        self.limits = limits
        self.open = 0
        self.preempted = 0
        self._per_peer: dict[str, int] = {}
        self._per_address: dict[str, int] = {}
        # Each open stream's writes, with its client's address.
        self._writes: dict[BoundedWrites, str] = {}

    def take(self, peer: str, writes: BoundedWrites) -> None:
        """Raises TooManyStreams past a cap; otherwise the caller owes a `release`."""
        held = self._per_peer.get(peer, 0)
        if held >= self.limits.max_streams_per_peer:
            raise TooManyStreams("connection", self.limits.max_streams_per_peer)
        address = peer_address(peer)
        if (self._per_address.get(address, 0) >= self.limits.max_streams_per_address
                and not self._preempt_one(address)):
            raise TooManyStreams("address", self.limits.max_streams_per_address)
        if self.open >= self.limits.max_streams and not self._preempt_one():
            raise TooManyStreams("server", self.limits.max_streams)
        self._per_peer[peer] = held + 1
        self._per_address[address] = self._per_address.get(address, 0) + 1
        self.open += 1
        self._writes[writes] = address

    def release(self, peer: str, writes: BoundedWrites) -> None:
        self.open -= 1
        self._writes.pop(writes, None)
        for counts, key in ((self._per_peer, peer), (self._per_address, peer_address(peer))):
            held = counts.get(key, 1) - 1
            if held:
                counts[key] = held
            else:
                counts.pop(key, None)

    def _preempt_one(self, address: str | None = None) -> bool:
        """Ends the stream (of `address`, if given) whose write has been stuck longest, if
        any has been long enough."""
        candidates = (w for w, a in self._writes.items() if address is None or a == address)
        oldest = min(candidates, key=BoundedWrites.pending_since, default=None)
        if oldest is None or not oldest.stuck_for(PREEMPT_AFTER_SECONDS):
            return False
        # Its slot is counted until its handler has unwound, a moment from now.
        self._writes.pop(oldest, None)
        oldest.stall(preempted=True)
        self.preempted += 1
        return True


class BoundedWrites:
    """One stream's `write`, ended with ConsumerStalled when a write hangs too long.

    A watchdog timer per stream, not a timeout per write: a write costs two attribute
    stores (this sits on the path of every streamed message), and the timer looks at the
    write in progress, if any, once per `timeout`.
    """

    def __init__(self, context: Any, timeout: float) -> None:
        self._write = context.write
        self._timeout = timeout
        self._task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        self._since: float | None = None
        self._stalled = False
        self._preempted = False
        self._timer = self._loop.call_later(timeout, self._check)

    def pending_since(self) -> float:
        """When the write in progress began (infinity: none in progress)."""
        return math.inf if self._since is None else self._since

    def stuck_for(self, seconds: float) -> bool:
        return self._since is not None and self._loop.time() - self._since >= seconds

    def stall(self, *, preempted: bool = False) -> None:
        """Ends the stream now, as if its write had timed out."""
        if not self._stalled:
            self._stalled = True
            self._preempted = preempted
            self._timer.cancel()
            if self._task is not None:
                self._task.cancel()

    def _check(self) -> None:
        since = self._since
        now = self._loop.time()
        if since is not None and now - since >= self._timeout:
            self.stall()
            return
        wait = self._timeout if since is None else since + self._timeout - now
        self._timer = self._loop.call_later(wait, self._check)

    async def write(self, message: Any) -> None:
        if self._stalled:
            raise self.error()
        self._since = self._loop.time()
        try:
            await self._write(message)
        except grpc.aio.InternalError:
            # The transport could not send: the reader's connection is gone (its process
            # killed mid-stream, so no cancel came first). The caller left: CANCELLED.
            raise asyncio.CancelledError from None
        except asyncio.CancelledError:
            if self._stalled and self._task is not None and self._task.uncancel() == 0:
                raise self.error() from None
            raise
        finally:
            self._since = None

    @property
    def stalled(self) -> bool:
        return self._stalled

    def error(self) -> ConsumerStalled:
        stuck = PREEMPT_AFTER_SECONDS if self._preempted else None
        return ConsumerStalled(self._timeout, preempted_after=stuck)

    def close(self) -> None:
        self._timer.cancel()


class BoundedContext:
    """The servicer context of one stream, with `write` bounded; all else is the context's.
    Handlers that write with `context.write` get the bound without knowing it."""

    def __init__(self, context: Any, writes: BoundedWrites) -> None:
        self._context = context
        self.write = writes.write

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


@contextlib.asynccontextmanager
async def bounded(ctx: Any, slots: StreamSlots | None, timeout: float | None, method: str
                  ) -> AsyncIterator[Any]:
    """The context a stream's handler writes to: with `slots`, a slot held for the
    stream's life (TOO_MANY_STREAMS when none is free) and writes bounded by `timeout`
    (CONSUMER_STALLED); without, the call's own context."""
    if slots is None or timeout is None:
        yield ctx
        return
    peer = ctx.peer()
    writes = BoundedWrites(ctx, timeout)
    try:
        slots.take(peer, writes)
    except ServiceError as refused:
        writes.close()
        await refuse(ctx, refused, method)
    metrics.OPEN_STREAMS.set(slots.open)
    try:
        yield BoundedContext(ctx, writes)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if not writes.stalled or task is None or task.uncancel():
            raise
        # Ended for stalling while its write had just gone through: the
        # cancellation landed at the handler's next await, not in the write.
        await refuse(ctx, writes.error(), method)
    finally:
        writes.close()
        slots.release(peer, writes)
        metrics.OPEN_STREAMS.set(slots.open)
