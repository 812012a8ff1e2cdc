"""The consumer RPCs of NotifierService (mixed into notifier/servicer.py's servicer):
validate, translate, call consumers.service.Consumers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc

from notifier.authz import require_all_users
from notifier.consumers import converters, validation
from notifier.consumers.pulls import PullSession
from notifier.consumers.service import Consumers
from notifier.consumers.store import ConsumerState
from servicekit import page_tokens
from servicekit.error_status import rpc_errors
from servicekit.errors import InvalidArgument
from zoho.notifier.v1 import notifier_pb2

Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class ConsumerRpcs:
    _consumers: Consumers

    async def _check_reader(self, consumer_id: str, method: str) -> None:
        _may_read(await self._consumers.store.get(consumer_id), method)

    @rpc_errors
    async def CreateConsumer(
        self, request: notifier_pb2.CreateConsumerRequest, context: Ctx
    ) -> notifier_pb2.Consumer:
        validation.create_request(request)
        if not request.user_id:
            require_all_users("CreateConsumer")
        start = converters.start_of(request.WhichOneof("start"), request)
        view = await self._consumers.create(converters.new_consumer(request), start)
        return converters.consumer(view)

    @rpc_errors
    async def GetConsumer(
        self, request: notifier_pb2.GetConsumerRequest, context: Ctx
    ) -> notifier_pb2.Consumer:
        validation.one_request(request)
        return converters.consumer(await self._consumers.get(request.consumer_id))

    @rpc_errors
    async def ListConsumers(
        self, request: notifier_pb2.ListConsumersRequest, context: Ctx
    ) -> notifier_pb2.ListConsumersResponse:
        validation.list_request(request)
        views, after_last = await self._consumers.page(
            validation.page_after(request.page_token),
            request.page_size or validation.DEFAULT_PAGE_SIZE,
        )
        return notifier_pb2.ListConsumersResponse(
            consumers=[converters.consumer(view) for view in views],
            next_page_token=page_tokens.encode(after_last) if after_last else "",
        )

    @rpc_errors
    async def DeleteConsumer(
        self, request: notifier_pb2.DeleteConsumerRequest, context: Ctx
    ) -> notifier_pb2.DeleteConsumerResponse:
        validation.one_request(request)
        # Deleting a position over every user's events would take it from the callers
        # that may read them: gated as reading it is. Get and List show counts, no events.
        await self._check_reader(request.consumer_id, "DeleteConsumer")
        await self._consumers.delete(request.consumer_id)
        return notifier_pb2.DeleteConsumerResponse()

    @rpc_errors
    async def SeekConsumer(
        self, request: notifier_pb2.SeekConsumerRequest, context: Ctx
    ) -> notifier_pb2.Consumer:
        validation.seek_request(request)
        await self._check_reader(request.consumer_id, "SeekConsumer")
        view = await self._consumers.seek(
            request.consumer_id, converters.start_of(request.WhichOneof("target"), request)
        )
        return converters.consumer(view)

    @rpc_errors
    async def Pull(  # a coroutine that writes (the stub knows only generators)
        self, requests: AsyncIterator[notifier_pb2.PullRequest], context: Ctx
    ) -> None:
        first = await anext(aiter(requests), None)
        if first is None:
            raise InvalidArgument([("consumer_id", "the first PullRequest must name the consumer")])
        acks, nacks = validation.pull_request(first, first=True)
        session = await self._consumers.open_pull(
            first.consumer_id, first.max_outstanding or converters.DEFAULT_MAX_OUTSTANDING,
            may_read=lambda consumer: _may_read(consumer, "Pull"),
        )
        reader = asyncio.ensure_future(_read(requests, session))
        try:
            if first.drain:
                session.drain()
            session.settle(acks, nacks)
            await context.send_initial_metadata(())
            # Each response is already serialized (notifier/service_handlers.py passes it through).
            async for response in session.responses():
                await context.write(response)
                if reader.done():
                    reader.result()  # a bad later request ends the stream with its error
            if reader.done():
                reader.result()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            session.close()


def _may_read(consumer: ConsumerState, method: str) -> None:
    """A consumer over every user's events is read (pulled, sought) only by a caller that
    may read every user's, as such a watch (NOTIFIER_CALLER_POLICY)."""
    if not consumer.user_id:
        require_all_users(method)


async def _read(requests: AsyncIterator[notifier_pb2.PullRequest], session: PullSession) -> None:
    try:
        async for request in requests:
            if request.consumer_id and request.consumer_id != session.consumer_id:
                raise InvalidArgument(
                    [("consumer_id", "a Pull serves one consumer: leave it empty after the first")]
                )
            acks, nacks = validation.pull_request(request, first=False)
            if request.drain:
                session.drain()
            session.settle(acks, nacks)
    finally:
        session.half_closed()
