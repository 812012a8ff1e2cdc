"""The unary write RPCs: CRM channels (POST, PUT, PATCH, _delete_events, DELETE) and Desk
webhooks (create, update, delete), including partial success (207)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import struct_pb2

from tests.notifier.helpers import DESK, collect, list_request
from tests.rpc_errors import bad_fields, error_info, reason
from zoho.notifier.v1 import notifier_pb2 as pb

DESK_WRITER_SCOPES = ["Desk.basic.READ", "Desk.webhooks.ALL"]


def spec(channel_id: str, *events: str, token: str = "", **kw) -> pb.CrmChannelSpec:
    return pb.CrmChannelSpec(
        channel_id=channel_id,
        events=list(events),
        notify_url=kw.pop("notify_url", f"https://hooks.example/{channel_id}"),
        token=token,
        **kw,
    )


async def listed(notifier, channel_id: str) -> list[pb.CrmChannel]:
    items = await collect(notifier.stub, list_request(channel_id=channel_id))
    return [item.crm for item in items]


@pytest.mark.slow
async def test_enable_subscribes_and_the_token_reaches_zoho_but_not_the_stream(
    sandbox, broker, notifier
) -> None:
    await broker.connect()
    reply = await notifier.stub.EnableCrmChannels(
        pb.EnableCrmChannelsRequest(
            user_id="demo",
            channels=[spec("77001", "Leads.create", "Deals.edit", token="verify-77001-secret")],
        )
    )
    assert [(r.index, r.status, r.code) for r in reply.results] == [(0, "success", "SUCCESS")]
    assert reply.results[0].details.fields["events"].list_value.values

    stored = [c for c in await sandbox.crm_channels() if c["channel_id"] == "77001"]
    assert {c["resource_name"] for c in stored} == {"Leads", "Deals"}
    assert {c["token"] for c in stored} == {"verify-77001-secret"}
    channels = await listed(notifier, "77001")
    assert {c.resource_name for c in channels} == {"Leads", "Deals"}
    assert all("verify-77001-secret" not in str(c) for c in channels)


@pytest.mark.slow
async def test_enable_with_one_bad_item_is_a_207_with_a_result_per_item(
    sandbox, broker, notifier
) -> None:
    await broker.connect()
    reply = await notifier.stub.EnableCrmChannels(
        pb.EnableCrmChannelsRequest(
            user_id="demo",
            # The module name is well formed, but Zoho knows no such module.
            channels=[spec("77002", "Leads.create"), spec("77003", "Nonsense.create")],
        )
    )
    assert [(r.index, r.status, r.code) for r in reply.results] == [
        (0, "success", "SUCCESS"),
        (1, "error", "INVALID_MODULE"),
    ]
    assert reply.results[1].details.fields["json_path"].string_value == "$.watch[1].events[0]"
    statuses = [c.status for c in await sandbox.calls("crm.watch")]
    assert statuses == [207]


@pytest.mark.slow
async def test_every_item_failing_still_comes_back_per_item(sandbox, broker, notifier) -> None:
    await broker.connect()
    reply = await notifier.stub.UpdateCrmChannels(
        pb.UpdateCrmChannelsRequest(user_id="demo", channels=[spec("88888", "Leads.edit")])
    )
    assert [(r.status, r.code) for r in reply.results] == [("error", "INVALID_DATA")]


@pytest.mark.slow
async def test_replace_puts_the_whole_subscription(sandbox, broker, notifier) -> None:
    await broker.connect()
    channel = (await sandbox.crm_channels())[0]["channel_id"]
    reply = await notifier.stub.ReplaceCrmChannels(
        pb.ReplaceCrmChannelsRequest(
            user_id="demo",
            channels=[spec(channel, "Deals.delete", notify_url="https://hooks.example/new")],
        )
    )
    assert [r.code for r in reply.results] == ["SUCCESS"]
    channels = await listed(notifier, channel)
    assert [(c.resource_name, list(c.events), c.notify_url) for c in channels] == [
        ("Deals", ["Deals.delete"], "https://hooks.example/new")
    ]
    assert next(c.method for c in await sandbox.calls("crm.watch")) == "PUT"


@pytest.mark.slow
async def test_update_patches_only_what_is_given(sandbox, broker, notifier) -> None:
    await broker.connect()
    before = next(c for c in await sandbox.crm_channels() if c["resource_name"] == "Leads")
    channel = before["channel_id"]
    reply = await notifier.stub.UpdateCrmChannels(
        pb.UpdateCrmChannelsRequest(
            user_id="demo", channels=[pb.CrmChannelSpec(channel_id=channel, events=["Leads.all"])]
        )
    )
    assert [r.code for r in reply.results] == ["SUCCESS"]
    leads = next(c for c in await listed(notifier, channel) if c.resource_name == "Leads")
    assert "Leads.all" in leads.events
    assert leads.notify_url == before["notify_url"]


@pytest.mark.slow
async def test_disable_events_sends_delete_events(sandbox, broker, notifier) -> None:
    await broker.connect()
    item = next(c for c in await sandbox.crm_channels() if len(c["events"]) >= 2)
    dropped = item["events"][0]
    reply = await notifier.stub.DisableCrmEvents(
        pb.DisableCrmEventsRequest(user_id="demo", channel_id=item["channel_id"], events=[dropped])
    )
    assert [r.code for r in reply.results] == ["SUCCESS"]
    after = next(
        c
        for c in await listed(notifier, item["channel_id"])
        if c.resource_name == item["resource_name"]
    )
    assert list(after.events) == item["events"][1:]


@pytest.mark.slow
async def test_disable_channels_reports_each_channel(sandbox, broker, notifier) -> None:
    await broker.connect()
    channel = (await sandbox.crm_channels())[0]["channel_id"]
    reply = await notifier.stub.DisableCrmChannels(
        pb.DisableCrmChannelsRequest(user_id="demo", channel_ids=[channel, "424242"])
    )
    # Zoho answers a result per module the channel covered (5 in the demo), then
    # NOT_SUBSCRIBED for the unknown one; each result's index is its channel's position.
    assert [(r.index, r.status, r.code) for r in reply.results] == [
        (0, "success", "SUCCESS")
    ] * 5 + [(1, "error", "NOT_SUBSCRIBED")]
    assert {r.details.fields["channel_id"].string_value for r in reply.results[:5]} == {channel}
    assert await listed(notifier, channel) == []


@pytest.mark.slow
async def test_write_requests_are_validated_before_zoho_is_called(
    sandbox, broker, notifier
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifier.stub.EnableCrmChannels(
            pb.EnableCrmChannelsRequest(
                user_id="demo",
                channels=[pb.CrmChannelSpec(channel_id="x1", events=["leads"], notify_url="")],
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(caught.value) == {
        "channels[0].channel_id",
        "channels[0].notify_url",
        "channels[0].events[0]",
    }
    assert (await sandbox.call_counts()).get("crm.watch", 0) == 0


@pytest.mark.slow
async def test_write_token_rejected_is_refreshed_and_the_write_done_once(
    sandbox, broker, notifier
) -> None:
    await broker.connect()

    async def invalidate_first(request, number: int) -> None:
        if number == 1:
            await sandbox.invalidate_access_token(request.headers["Authorization"].split()[1])

    notifier.http.before = invalidate_first
    reply = await notifier.stub.EnableCrmChannels(
        pb.EnableCrmChannelsRequest(user_id="demo", channels=[spec("77010", "Leads.create")])
    )
    assert [r.code for r in reply.results] == ["SUCCESS"]
    assert [c.status for c in await sandbox.calls("crm.watch")] == [401, 201]


@pytest.mark.slow
async def test_crm_write_without_the_scope_is_missing_scope(sandbox, broker, notifier) -> None:
    refresh = await sandbox.add_refresh_token(scopes=["ZohoCRM.notifications.READ"])
    await broker.connect(
        refresh_token=refresh,
        scopes=["ZohoCRM.notifications.READ", "ZohoCRM.notifications.CREATE"],
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifier.stub.EnableCrmChannels(
            pb.EnableCrmChannelsRequest(user_id="demo", channels=[spec("77020", "Leads.create")])
        )
    info = error_info(caught.value)
    assert (info.reason, info.metadata["scope"]) == (
        "MISSING_SCOPE",
        "ZohoCRM.notifications.CREATE",
    )


# ---- Desk --------------------------------------------------------------------------------


async def desk_writer(sandbox, broker) -> None:
    refresh = await sandbox.add_refresh_token(scopes=DESK_WRITER_SCOPES)
    await broker.connect(refresh_token=refresh, scopes=DESK_WRITER_SCOPES)


def webhook_spec(**kw) -> pb.DeskWebhookSpec:
    options = struct_pb2.Struct()
    options.update({"Ticket_Update": {"fields": ["status"], "includePrevState": True}})
    values = {
        "name": "Escalations",
        "url": "https://hooks.example/desk",
        "description": "tickets that change",
        "subscriptions": ["Ticket_Add", "Ticket_Update"],
        "subscription_options": options,
        "is_enabled": True,
        **kw,
    }
    return pb.DeskWebhookSpec(**values)


@pytest.mark.slow
async def test_desk_create_update_delete(sandbox, broker, notifier, receiver) -> None:
    await desk_writer(sandbox, broker)

    created = (
        await notifier.stub.CreateDeskWebhook(
            pb.CreateDeskWebhookRequest(user_id="demo", webhook=webhook_spec(url=receiver.url()))
        )
    ).webhook
    # Desk checked the URL before creating the webhook.
    assert [r.method for r in receiver.requests()] == ["GET"]
    assert (created.name, list(created.subscriptions)) == (
        "Escalations",
        ["Ticket_Add", "Ticket_Update"],
    )
    assert created.id

    updated = (
        await notifier.stub.UpdateDeskWebhook(
            pb.UpdateDeskWebhookRequest(
                user_id="demo",
                webhook_id=created.id,
                webhook=pb.DeskWebhookSpec(name="Renamed"),
                update_fields=["name"],
            )
        )
    ).webhook
    assert (updated.id, updated.name, updated.url) == (created.id, "Renamed", created.url)
    # Desk's PATCH requires subscriptions: the current ones went along, unchanged.
    assert list(updated.subscriptions) == ["Ticket_Add", "Ticket_Update"]

    await notifier.stub.DeleteDeskWebhook(
        pb.DeleteDeskWebhookRequest(user_id="demo", webhook_id=created.id)
    )
    remaining = await collect(notifier.stub, list_request(app_type=DESK))
    assert created.id not in {i.desk.id for i in remaining}
    methods = [(c.method, c.org_id) for c in await sandbox.calls("desk.webhooks")]
    assert methods[:4] == [
        ("POST", "3981311"),
        ("GET", "3981311"),
        ("PATCH", "3981311"),
        ("DELETE", "3981311"),
    ]


@pytest.mark.slow
async def test_desk_delete_of_an_unknown_webhook_is_not_found(sandbox, broker, notifier) -> None:
    await desk_writer(sandbox, broker)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifier.stub.DeleteDeskWebhook(
            pb.DeleteDeskWebhookRequest(user_id="demo", webhook_id="12345")
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.slow
async def test_desk_create_refused_by_desk_keeps_desks_code(sandbox, broker, notifier) -> None:
    await desk_writer(sandbox, broker)
    await sandbox.configure(desk_webhook_limit=5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifier.stub.CreateDeskWebhook(
            pb.CreateDeskWebhookRequest(user_id="demo", webhook=webhook_spec())
        )
    info = error_info(caught.value)
    assert (info.reason, info.metadata["zoho_code"]) == ("ZOHO_REJECTED", "UNPROCESSABLE_ENTITY")


@pytest.mark.slow
async def test_desk_create_is_not_repeated_after_a_5xx(sandbox, broker, notifier, receiver) -> None:
    await desk_writer(sandbox, broker)
    await sandbox.fault("desk.webhooks", "status_500", when="after")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifier.stub.CreateDeskWebhook(
            pb.CreateDeskWebhookRequest(user_id="demo", webhook=webhook_spec(url=receiver.url()))
        )
    assert reason(caught.value) == "ZOHO_UNAVAILABLE"
    assert (await sandbox.call_counts())["desk.webhooks"] == 1
    # Desk made the webhook (its URL check passed); only the answer was lost.
    listed = await collect(notifier.stub, list_request(app_type=DESK))
    assert receiver.url() in {item.desk.url for item in listed}


@pytest.mark.slow
async def test_desk_write_without_the_scope_is_missing_scope(sandbox, broker, notifier) -> None:
    await broker.connect()  # the demo grant reads webhooks but cannot create them
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifier.stub.CreateDeskWebhook(
            pb.CreateDeskWebhookRequest(user_id="demo", webhook=webhook_spec())
        )
    info = error_info(caught.value)
    assert (info.reason, info.metadata["scope"]) == ("MISSING_SCOPE", "Desk.webhooks.CREATE")


@pytest.mark.slow
async def test_desk_update_fields_are_checked(sandbox, broker, notifier) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifier.stub.UpdateDeskWebhook(
            pb.UpdateDeskWebhookRequest(
                user_id="demo",
                webhook_id="abc",
                webhook=pb.DeskWebhookSpec(),
                update_fields=["colour"],
            )
        )
    assert bad_fields(caught.value) == {"webhook_id", "update_fields"}
