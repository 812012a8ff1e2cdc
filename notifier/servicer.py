"""NotifierService over gRPC: validates, hands the caller's deadline on, translates.
The logic lives in notifications.Notifications, subscriptions.service.Subscriptions,
events.watch.Watches and (consumers/servicer.py's RPCs) consumers.service.Consumers."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any, TypeAlias

import grpc

from notifier import converters, validation
from notifier.authz import require_all_users
from notifier.consumers.service import Consumers
from notifier.consumers.servicer import ConsumerRpcs
from notifier.events import metrics as events_metrics
from notifier.events.watch import Watches
from notifier.events.watch_query import watch_query
from notifier.notifications import Notifications
from notifier.redaction import mask_notifications, mask_webhook
from notifier.subscriptions import converters as subscription_converters
from notifier.subscriptions import validation as subscription_validation
from notifier.subscriptions.service import Subscriptions
from servicekit import scopes
from servicekit.deadline import Deadline
from servicekit.error_status import rpc_errors
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

Ctx: TypeAlias = grpc.aio.ServicerContext[Any, Any]
DESK = common_pb2.APP_TYPE_DESK


# ConsumerRpcs.Pull is a coroutine that writes; the stub knows only generators.
class NotifierServicer(  # type: ignore[misc]
    ConsumerRpcs, notifier_pb2_grpc.NotifierServiceServicer
):
    def __init__(
        self,
        notifications: Notifications,
        subscriptions: Subscriptions,
        watches: Watches,
        consumers: Consumers,
    ) -> None:
        self._n = notifications
        self._subscriptions = subscriptions
        self._watches = watches
        self._consumers = consumers

    @rpc_errors
    async def ListNotifications(  # type: ignore[override]  # the stub knows only generators
        self, request: notifier_pb2.ListNotificationsRequest, context: Ctx
    ) -> None:
        # Written, not yielded: one write per item and no generator step per item
        # (a server-streaming handler may be a coroutine that writes).
        query = converters.list_query(request)
        validation.list_query(query)
        async with aclosing(self._n.stream_pages(query, Deadline.of(context))) as pages:
            async for page in pages:
                desk = query.app_type == DESK
                # Items are converted as they are taken from a page: masked one by one.
                for item in page:
                    if desk:
                        mask_webhook(item.desk)
                    await context.write(item)

    @rpc_errors
    async def ListNotificationPages(  # type: ignore[override]  # as above
        self, request: notifier_pb2.ListNotificationPagesRequest, context: Ctx
    ) -> None:
        query = converters.list_query(request)
        validation.list_query(query)
        stream = self._n.stream_pages(query, Deadline.of(context), whole_pages=True)
        async with aclosing(stream) as pages:
            async for page in pages:
                if page:  # an empty page (CRM's 204) says nothing a caller needs
                    response = notifier_pb2.ListNotificationPagesResponse(notifications=page)
                    mask_notifications(response.notifications)
                    await context.write(response)

    @rpc_errors
    async def EnableCrmChannels(
        self, request: notifier_pb2.EnableCrmChannelsRequest, context: Ctx
    ) -> notifier_pb2.EnableCrmChannelsResponse:
        validation.crm_channels(request.user_id, request.channels, complete=True)
        items = [converters.crm_spec_json(c) for c in request.channels]
        results = await self._n.crm_write(
            request.user_id, "POST", items, scope=scopes.CRM_CREATE, deadline=Deadline.of(context)
        )
        return notifier_pb2.EnableCrmChannelsResponse(results=results)

    @rpc_errors
    async def ReplaceCrmChannels(
        self, request: notifier_pb2.ReplaceCrmChannelsRequest, context: Ctx
    ) -> notifier_pb2.ReplaceCrmChannelsResponse:
        validation.crm_channels(request.user_id, request.channels, complete=True)
        items = [converters.crm_spec_json(c) for c in request.channels]
        results = await self._n.crm_write(
            request.user_id, "PUT", items, scope=scopes.CRM_UPDATE, deadline=Deadline.of(context)
        )
        return notifier_pb2.ReplaceCrmChannelsResponse(results=results)

    @rpc_errors
    async def UpdateCrmChannels(
        self, request: notifier_pb2.UpdateCrmChannelsRequest, context: Ctx
    ) -> notifier_pb2.UpdateCrmChannelsResponse:
        validation.crm_channels(request.user_id, request.channels, complete=False)
        items = [converters.crm_spec_json(c, partial=True) for c in request.channels]
        results = await self._n.crm_write(
            request.user_id, "PATCH", items, scope=scopes.CRM_UPDATE, deadline=Deadline.of(context)
        )
        return notifier_pb2.UpdateCrmChannelsResponse(results=results)

    @rpc_errors
    async def DisableCrmEvents(
        self, request: notifier_pb2.DisableCrmEventsRequest, context: Ctx
    ) -> notifier_pb2.DisableCrmEventsResponse:
        validation.disable_events(request)
        item = converters.crm_disable_events_json(request.channel_id, request.events)
        results = await self._n.crm_write(
            request.user_id,
            "PATCH",
            [item],
            scope=scopes.CRM_UPDATE,
            deadline=Deadline.of(context),
        )
        return notifier_pb2.DisableCrmEventsResponse(results=results)

    @rpc_errors
    async def DisableCrmChannels(
        self, request: notifier_pb2.DisableCrmChannelsRequest, context: Ctx
    ) -> notifier_pb2.DisableCrmChannelsResponse:
        validation.disable_channels(request)
        results = await self._n.crm_disable_channels(
            request.user_id, list(request.channel_ids), Deadline.of(context)
        )
        return notifier_pb2.DisableCrmChannelsResponse(results=results)

    @rpc_errors
    async def CreateDeskWebhook(
        self, request: notifier_pb2.CreateDeskWebhookRequest, context: Ctx
    ) -> notifier_pb2.CreateDeskWebhookResponse:
        validation.desk_webhook(request.user_id, request.webhook)
        body = converters.desk_spec_json(request.webhook)
        webhook = await self._n.desk_create(request.user_id, body, Deadline.of(context))
        return notifier_pb2.CreateDeskWebhookResponse(webhook=mask_webhook(webhook))

    @rpc_errors
    async def UpdateDeskWebhook(
        self, request: notifier_pb2.UpdateDeskWebhookRequest, context: Ctx
    ) -> notifier_pb2.UpdateDeskWebhookResponse:
        validation.desk_webhook(
            request.user_id,
            request.webhook,
            webhook_id=request.webhook_id,
            update_fields=request.update_fields,
        )
        body = converters.desk_spec_json(request.webhook, request.update_fields)
        webhook = await self._n.desk_update(
            request.user_id, request.webhook_id, body, Deadline.of(context)
        )
        return notifier_pb2.UpdateDeskWebhookResponse(webhook=mask_webhook(webhook))

    @rpc_errors
    async def DeleteDeskWebhook(
        self, request: notifier_pb2.DeleteDeskWebhookRequest, context: Ctx
    ) -> notifier_pb2.DeleteDeskWebhookResponse:
        validation.delete_webhook(request)
        await self._n.desk_delete(request.user_id, request.webhook_id, Deadline.of(context))
        return notifier_pb2.DeleteDeskWebhookResponse()

    # ---- subscriptions and live events ----------------------------------------------------

    @rpc_errors
    async def CreateSubscription(
        self, request: notifier_pb2.CreateSubscriptionRequest, context: Ctx
    ) -> notifier_pb2.Subscription:
        subscription_validation.create_request(request)
        query = subscription_converters.create_query(request)
        row = await self._subscriptions.create(query, Deadline.of(context))
        return subscription_converters.subscription(row)

    @rpc_errors
    async def GetSubscription(
        self, request: notifier_pb2.GetSubscriptionRequest, context: Ctx
    ) -> notifier_pb2.Subscription:
        subscription_validation.one_request(request)
        row = await self._subscriptions.get(request.user_id, request.subscription_id)
        return subscription_converters.subscription(row)

    @rpc_errors
    async def ListSubscriptions(
        self, request: notifier_pb2.ListSubscriptionsRequest, context: Ctx
    ) -> notifier_pb2.ListSubscriptionsResponse:
        subscription_validation.list_request(request)
        rows, next_token = await self._subscriptions.page(
            request.user_id, request.page_size, request.page_token
        )
        return notifier_pb2.ListSubscriptionsResponse(
            subscriptions=[subscription_converters.subscription(row) for row in rows],
            next_page_token=next_token,
        )

    @rpc_errors
    async def DeleteSubscription(
        self, request: notifier_pb2.DeleteSubscriptionRequest, context: Ctx
    ) -> notifier_pb2.DeleteSubscriptionResponse:
        subscription_validation.one_request(request)
        await self._subscriptions.delete(
            request.user_id, request.subscription_id, Deadline.of(context)
        )
        return notifier_pb2.DeleteSubscriptionResponse()

    @rpc_errors
    async def WatchNotifications(  # type: ignore[override]  # a coroutine that writes
        self, request: notifier_pb2.WatchNotificationsRequest, context: Ctx
    ) -> None:
        query = watch_query(request)
        if not query.user_id:
            require_all_users("WatchNotifications")
        start = await self._watches.start_position(query)
        # Headers now: a caller that has them knows every later event will reach it.
        await context.send_initial_metadata(())
        # The one place WatchNotifications writes: stream caps and stall timeouts go here.
        # Each event is already serialized (its serializer passes bytes: service_handlers.py).
        async with aclosing(self._watches.stream(query, start)) as batches:
            async for batch in batches:
                for wire in batch:
                    await context.write(wire)
                # Once written: a reader holding the stream back shows as lag too.
                events_metrics.observe_watch_lag(batch[-1])
