"""`watch`: WatchNotifications that survives disconnects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc
from zoho_connect.backoff import Backoff
from zoho_connect.errors import error_from

log = logging.getLogger(__name__)


async def watch(
    channel: grpc.aio.Channel,
    *,
    user_id: str = "",
    app_type: int = 0,
    subscription_id: str = "",
    after_cursor: str = "",
    from_earliest: bool = False,
    backoff: Backoff | None = None,
    timeout: float | None = None,
) -> AsyncIterator[notifier_pb2.NotificationEvent]:
    """Every event matching the filters, in log order, for as long as it is iterated.

    After a disconnect it reconnects with jittered backoff and resumes right after the
    last event it yielded: nothing missed, nothing repeated. Before the first event it
    resumes where it started (after `after_cursor`, or from the earliest); a watch
    "from now" that never saw an event starts from now again. Errors that retrying
    cannot fix are raised as zoho_connect.errors types (CursorExpiredError,
    InvalidArgumentError, ...). `timeout`: a deadline for each WatchNotifications call.
    """
    stub = notifier_pb2_grpc.NotifierServiceStub(channel)
    pacing = backoff or Backoff()
    cursor = after_cursor
    attempt = 0
    while True:
        request = notifier_pb2.WatchNotificationsRequest(
            user_id=user_id, app_type=app_type,  # type: ignore[arg-type]
            subscription_id=subscription_id, after_cursor=cursor,
            from_earliest=from_earliest and not cursor,
        )
        call = stub.WatchNotifications(request, timeout=timeout)
        retry_after: float | None = None
        try:
            async for event in call:
                attempt = 0
                cursor = event.cursor
                yield event
        except grpc.aio.AioRpcError as failed:
            error = error_from(failed)
            if not error.retryable:
                raise error from failed
            retry_after = error.retry_after
            log.info("watch interrupted (%s %s); resuming", failed.code().name, error.reason)
        finally:
            call.cancel()
        await asyncio.sleep(pacing.delay(attempt, retry_after))
        attempt += 1
