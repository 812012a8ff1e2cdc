"""Events put in the log through the notifier's own writer, and a Pull stream read in
the background, for the consumer tests."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from notifier.events.log import NewEvent
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2

SUB = "sub_" + "0" * 24
_serial = [0]


def new_event(record: str = "1", *, user: str = "demo", module: str = "Leads",
              app: int = common_pb2.APP_TYPE_CRM, subscription: str = SUB) -> NewEvent:
    _serial[0] += 1
    event = notifier_pb2.NotificationEvent(
        subscription_id=subscription, user_id=user, app_type=app,  # type: ignore[arg-type]
        module=module, operation="edit", record_id=record,
    )
    return NewEvent(f"test-{_serial[0]}-{record}", event)


async def append(notifier: Any, *records: str, **fields: Any) -> None:
    """Events for `records` (one each, in order), committed by the notifier's writer."""
    await notifier.app.live.writer.append([new_event(r, **fields) for r in records])


class Puller:
    """A Pull stream: requests written as asked, responses read into `received`."""

    def __init__(self, stub: Any, consumer_id: str = "", max_outstanding: int = 0,
                 **first: Any) -> None:
        self.call = stub.Pull()
        self.first = notifier_pb2.PullRequest(
            consumer_id=consumer_id, max_outstanding=max_outstanding, **first
        )
        self.received: list[tuple[notifier_pb2.NotificationEvent, int]] = []
        self.error: grpc.aio.AioRpcError | None = None
        self.ended = False
        self._opened = asyncio.Event()
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            await self.call.write(self.first)
            self._opened.set()
            async for response in self.call:
                self.received.extend(zip(response.events, response.delivery_attempts,
                                         strict=True))
            self.ended = True
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.error = error
        except asyncio.InvalidStateError:
            pass

    @property
    def records(self) -> list[str]:
        return [event.record_id for event, _ in self.received]

    async def wait_for(self, count: int, limit: float = 10.0
                       ) -> list[tuple[notifier_pb2.NotificationEvent, int]]:
        async with asyncio.timeout(limit):
            while len(self.received) < count and self.error is None:
                await asyncio.sleep(0.01)
        if self.error is not None:
            raise self.error
        return self.received

    async def failure(self, limit: float = 10.0) -> grpc.aio.AioRpcError:
        async with asyncio.timeout(limit):
            while self.error is None:
                await asyncio.sleep(0.01)
        return self.error

    async def ack(self, *cursors: str) -> None:
        await self._opened.wait()
        await self.call.write(notifier_pb2.PullRequest(ack_cursors=list(cursors)))

    async def nack(self, *cursors: str) -> None:
        await self._opened.wait()
        await self.call.write(notifier_pb2.PullRequest(nack_cursors=list(cursors)))

    async def close(self) -> None:
        """Half-closes: the server writes what was acked, then ends the stream."""
        await self._opened.wait()
        await self.call.done_writing()
        async with asyncio.timeout(10):
            await self._task

    async def stop(self) -> None:
        self.call.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def create(stub: Any, consumer_id: str = "sync", **fields: Any) -> notifier_pb2.Consumer:
    if not {"from_earliest", "start_time", "after_cursor"} & set(fields):
        fields["from_earliest"] = True
    return await stub.CreateConsumer(
        notifier_pb2.CreateConsumerRequest(consumer_id=consumer_id, **fields), timeout=10
    )


async def get(stub: Any, consumer_id: str = "sync") -> notifier_pb2.Consumer:
    return await stub.GetConsumer(
        notifier_pb2.GetConsumerRequest(consumer_id=consumer_id), timeout=10
    )


async def until(condition: Any, limit: float = 10.0) -> None:
    async with asyncio.timeout(limit):
        while not await condition():
            await asyncio.sleep(0.02)
