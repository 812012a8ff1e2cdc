"""`consume`: a consumer's events through Pull, each acknowledged once its handler
returns and nacked (delivered again, to any Pull of the consumer) when it raises."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import grpc

from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc
from zoho_connect.backoff import Backoff
from zoho_connect.errors import error_from

log = logging.getLogger(__name__)

Handler = Callable[[notifier_pb2.NotificationEvent], Awaitable[None]]


async def consume(
    channel: grpc.aio.Channel,
    consumer_id: str,
    handler: Handler,
    *,
    max_outstanding: int = 100,
    concurrency: int = 16,
    stop: asyncio.Event | None = None,
    drain_seconds: float = 30.0,
    ack_interval: float = 0.01,
    backoff: Backoff | None = None,
) -> None:
    """Runs `handler` on the consumer's events until `stop` is set, then drains.

    At most `concurrency` handlers run at once, and the server sends at most
    `max_outstanding` events this stream has not settled. The notifier never hands out
    two events of one record at a time, so handlers may run concurrently without
    reordering a record's changes. Acks are sent together every `ack_interval` seconds.
    Disconnects are retried with jittered backoff (handlers still running ack on the
    next stream); errors retrying cannot fix raise zoho_connect.errors types
    (NotFoundError for an unknown consumer, ...). On `stop`: no new handler starts,
    running ones get `drain_seconds` to finish (then are cancelled and nacked), events
    not started are nacked, and the last acks are sent before the stream closes.
    """
    runner = _Consumer(
        notifier_pb2_grpc.NotifierServiceStub(channel), consumer_id, handler,
        max_outstanding=max_outstanding, concurrency=concurrency,
        stop=stop or asyncio.Event(), drain_seconds=drain_seconds,
        ack_interval=ack_interval, backoff=backoff or Backoff(),
    )
    await runner.run()


class _Consumer:
    def __init__(
        self, stub: notifier_pb2_grpc.NotifierServiceStub, consumer_id: str, handler: Handler,
        *, max_outstanding: int, concurrency: int, stop: asyncio.Event, drain_seconds: float,
        ack_interval: float, backoff: Backoff,
    ) -> None:
        self._stub = stub
        self._consumer_id = consumer_id
        self._handler = handler
        self._max_outstanding = max_outstanding
        self._concurrency = concurrency
        self._stop = stop
        self._drain_seconds = drain_seconds
        self._ack_interval = ack_interval
        self._backoff = backoff
        # Kept across streams: a handler that finishes after a disconnect acks on the next.
        self._acks: list[str] = []
        self._nacks: list[str] = []
        self._running: set[asyncio.Task[None]] = set()
        # Set when a handler finishes (room for another) or on stop.
        self._changed = asyncio.Event()
        self._settled = asyncio.Event()

    async def run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            retry_after: float | None = None
            try:
                if await self._stream():
                    attempt = 0
            except grpc.aio.AioRpcError as failed:
                error = error_from(failed)
                if not error.retryable:
                    await self._drain()
                    raise error from failed
                retry_after = error.retry_after
                log.info("Pull interrupted (%s %s); reconnecting",
                         failed.code().name, error.reason)
            if self._stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._backoff.delay(attempt, retry_after)):
                    await self._stop.wait()
            attempt += 1
        await self._drain()

    async def _stream(self) -> bool:
        """One Pull until it fails (raised), ends, or `stop` (drained); whether any
        event came."""
        call = self._stub.Pull()
        await call.write(notifier_pb2.PullRequest(
            consumer_id=self._consumer_id, max_outstanding=self._max_outstanding,
            ack_cursors=self._take(self._acks), nack_cursors=self._take(self._nacks),
        ))
        received = [False]
        reader = asyncio.ensure_future(self._read(call, received))
        flusher = asyncio.ensure_future(self._flush(call))
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({reader, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not reader.done():
                self._changed.set()  # the reader nacks what it holds from now on
                await call.write(notifier_pb2.PullRequest(drain=True))  # nothing more comes
                await self._drain()
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher
                await call.write(notifier_pb2.PullRequest(
                    ack_cursors=self._take(self._acks), nack_cursors=self._take(self._nacks)
                ))
                await call.done_writing()  # the server writes the acks, then ends the stream
            await reader
        finally:
            for task in (reader, flusher, stopping):
                task.cancel()
            call.cancel()
        return received[0]

    async def _read(self, call: grpc.aio.StreamStreamCall, received: list[bool]) -> None:
        async for response in call:
            received[0] = True
            for event in response.events:
                while len(self._running) >= self._concurrency and not self._stop.is_set():
                    self._changed.clear()
                    await self._changed.wait()
                if self._stop.is_set():
                    self._nacks.append(event.cursor)
                    continue
                task = asyncio.ensure_future(self._handle(event))
                self._running.add(task)
                task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._settled.set()
        self._changed.set()

    async def _handle(self, event: notifier_pb2.NotificationEvent) -> None:
        try:
            await self._handler(event)
        except asyncio.CancelledError:
            self._nacks.append(event.cursor)
            raise
        except Exception:
            log.exception("handler failed for event %s; nacked", event.cursor)
            self._nacks.append(event.cursor)
        else:
            self._acks.append(event.cursor)

    async def _flush(self, call: grpc.aio.StreamStreamCall) -> None:
        while True:
            await self._settled.wait()
            await asyncio.sleep(self._ack_interval)
            self._settled.clear()
            if self._acks or self._nacks:
                await call.write(notifier_pb2.PullRequest(
                    ack_cursors=self._take(self._acks), nack_cursors=self._take(self._nacks)
                ))

    async def _drain(self) -> None:
        if not self._running:
            return
        _, late = await asyncio.wait(set(self._running), timeout=self._drain_seconds)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    @staticmethod
    def _take(cursors: list[str]) -> list[str]:
        taken = list(cursors)
        cursors.clear()
        return taken
