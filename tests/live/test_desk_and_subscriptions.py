"""Desk webhooks through the ingress (path secret, URL check, 410 once deleted, JWT),
subscription CRUD and its validation, and retention -> CURSOR_EXPIRED."""

from __future__ import annotations

import base64
import json
import time

import grpc
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from notifier.events.cursor import format_cursor
from sandbox.demo.tenant import DEMO_SCOPES
from tests.live.helpers import CRM, DESK, Watcher, crm_subscription, desk_subscription
from tests.plugins.zoho_callbacks import crm_body, desk_event
from tests.rpc_errors import bad_fields, error_info, reason
from zoho.notifier.v1 import notifier_pb2


@pytest.mark.slow
async def test_desk_events_with_the_path_secret_are_streamed_and_a_deleted_one_is_410(
    notifier, sandbox, connect_subscriber, callbacks
) -> None:
    await connect_subscriber()
    sub, url = await desk_subscription(notifier, sandbox)
    assert sub.status == notifier_pb2.SUBSCRIPTION_STATUS_ACTIVE and sub.app_type == DESK
    # Desk's URL check: a GET (then a POST) answered 200 for a known path only.
    assert (await callbacks.http.get(url)).status_code == 200
    assert (await callbacks.http.post(url, content=b"")).status_code == 200
    assert (await callbacks.http.get(url + "x")).status_code == 401
    watcher = Watcher(notifier.stub, user_id="demo", app_type=DESK)
    await watcher.started()
    batch = [
        desk_event("Ticket_Add", "501", subject="Printer"),
        desk_event("Ticket_Update", "501", subject="Printer on fire", prev={"subject": "Printer"}),
    ]
    assert (await callbacks.desk(url, batch)).status_code == 200
    assert (await callbacks.desk(url, batch)).status_code == 200  # repeated: stored once
    forged = url.rsplit("/", 1)[0] + "/" + "A" * 43
    assert (await callbacks.desk(forged, [desk_event("Ticket_Add", "666")])).status_code == 401
    # A last delivery as the positive signal: events stream in log order, so once it is
    # seen, whatever the repeat or the forgery had stored would have been seen before it.
    assert (await callbacks.desk(url, [desk_event("Ticket_Add", "end")])).status_code == 200
    events = await watcher.wait_for(3)
    assert watcher.events[-1].record_id == "end"
    assert [(e.operation, e.module, e.record_id) for e in watcher.events[:-1]] == [
        ("Ticket_Add", "Ticket", "501"), ("Ticket_Update", "Ticket", "501")]
    assert events[1].values["subject"] == "Printer on fire"
    assert events[1].previous["subject"] == "Printer"
    assert list(events[1].affected_fields) == ["subject"]
    await watcher.stop()
    await notifier.stub.DeleteSubscription(
        notifier_pb2.DeleteSubscriptionRequest(user_id="demo", subscription_id=sub.subscription_id)
    )
    assert (await callbacks.desk(url, [desk_event("Ticket_Add", "9")])).status_code == 410
    assert (await callbacks.http.get(forged)).status_code == 401
    webhooks = notifier.stub.ListNotifications(
        notifier_pb2.ListNotificationsRequest(user_id="demo", app_type=DESK))
    assert sub.zoho_id not in [w.desk.id async for w in webhooks]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jwt(key: rsa.RSAPrivateKey, claims: dict[str, object], kid: str = "k1") -> str:
    head = _b64(json.dumps({"alg": "RS256", "kid": kid, "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = key.sign(f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{head}.{body}.{_b64(signature)}"


@pytest.mark.slow
async def test_an_x_zdesk_jwt_is_checked_against_the_data_centres_keys(
    notifier, sandbox, connect_subscriber, callbacks
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()
    jwks = {"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256",
                      "n": _b64(numbers.n.to_bytes(256, "big")), "e": _b64(b"\x01\x00\x01")}]}
    app = web.Application()
    async def keys(_: web.Request) -> web.Response:
        return web.json_response(jwks)

    app.router.add_get("/.well-known/jwks.json", keys)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    origin = f"http://127.0.0.1:{runner.addresses[0][1]}"
    notifier.app.live.ingress._jwks_override = origin + "/.well-known/jwks.json"
    # The key server stands in for the Desk host: an allowed origin, as the sandbox is.
    notifier.app.policy._all = notifier.app.policy._all | {origin}
    try:
        await connect_subscriber()
        sub, url = await desk_subscription(notifier, sandbox)
        good = {"iss": "orgId:3981311", "aud": f"webhookId:{sub.zoho_id}",
                "exp": time.time() + 300}
        unsigned = await callbacks.desk(url, [desk_event("Ticket_Add", "0")])
        assert unsigned.status_code == 200  # this Desk host has not signed one yet
        ok = await callbacks.desk(url, [desk_event("Ticket_Add", "1")], jwt=_jwt(key, good))
        assert ok.status_code == 200
        # Once seen, always required: the path secret alone no longer delivers, in this
        # process or any other (the flag is in the row, read afresh here).
        notifier.app.live.directory.forget(sub.subscription_id)
        assert (await notifier.app.live.directory.lookup(sub.subscription_id)).desk_jwt_required
        later = await callbacks.desk(url, [desk_event("Ticket_Add", "3")])
        assert later.status_code == 401
        # Desk's URL check (no events) is still answered: a repair re-checks the URL.
        assert (await callbacks.http.post(url, content=b"")).status_code == 200
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        for token in (
            _jwt(other, good),
            _jwt(key, {**good, "aud": "webhookId:1"}),
            _jwt(key, {**good, "exp": time.time() - 3600}),
            "not.a.jwt",
        ):
            answer = await callbacks.desk(url, [desk_event("Ticket_Add", "2")], jwt=token)
            assert answer.status_code == 401
        end = await callbacks.desk(url, [desk_event("Ticket_Add", "end")], jwt=_jwt(key, good))
        assert end.status_code == 200  # the positive signal: stored after every refusal
        watcher = Watcher(notifier.stub, from_earliest=True)
        await watcher.wait_for(3)
        assert [e.record_id for e in watcher.events] == ["0", "1", "end"]
        await watcher.stop()
    finally:
        await runner.cleanup()


@pytest.mark.slow
async def test_subscriptions_are_listed_got_and_deleted_at_zoho_too(
    notifier, sandbox, connect_subscriber
) -> None:
    await connect_subscriber()
    crm, channel = await crm_subscription(notifier, sandbox, events=("Leads.create", "Deals.all"))
    desk, _ = await desk_subscription(notifier, sandbox)
    assert crm.expires_at.seconds > time.time() + 6 * 86400
    listed = await notifier.stub.ListSubscriptions(
        notifier_pb2.ListSubscriptionsRequest(user_id="demo", page_size=1))
    assert len(listed.subscriptions) == 1 and listed.next_page_token
    rest = await notifier.stub.ListSubscriptions(notifier_pb2.ListSubscriptionsRequest(
        user_id="demo", page_token=listed.next_page_token))
    ids = {s.subscription_id for s in [*listed.subscriptions, *rest.subscriptions]}
    assert ids == {crm.subscription_id, desk.subscription_id}
    got = await notifier.stub.GetSubscription(notifier_pb2.GetSubscriptionRequest(
        user_id="demo", subscription_id=crm.subscription_id))
    assert list(got.events) == ["Leads.create", "Deals.all"] and got.app_type == CRM
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifier.stub.GetSubscription(notifier_pb2.GetSubscriptionRequest(
            user_id="someone-else", subscription_id=crm.subscription_id))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    await notifier.stub.DeleteSubscription(notifier_pb2.DeleteSubscriptionRequest(
        user_id="demo", subscription_id=crm.subscription_id))
    assert channel["channel_id"] not in {c["channel_id"] for c in await sandbox.crm_channels()}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"app_type": CRM, "events": ["Leads.explode"]}, "events[0]"),
        ({"app_type": CRM, "events": ["Unicorns.all"]}, "events[0]"),
        ({"app_type": CRM, "events": [f"Leads.all{i}" for i in range(11)]}, "events"),
        ({"app_type": CRM, "events": []}, "events"),
        ({"app_type": DESK, "events": ["Ticket_Explode"]}, "events[0]"),
        ({"app_type": 0, "events": ["Ticket_Add"]}, "app_type"),
    ],
)
async def test_bad_subscriptions_are_invalid_argument_naming_the_field(
    notifier, connect_subscriber, sandbox, request_fields, field
) -> None:
    await connect_subscriber()
    await sandbox.clear_calls()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifier.stub.CreateSubscription(
            notifier_pb2.CreateSubscriptionRequest(user_id="demo", **request_fields))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in bad_fields(caught.value)


@pytest.mark.slow
@pytest.mark.parametrize(("app_type", "scope"), [
    (CRM, "ZohoCRM.notifications.CREATE"), (DESK, "Desk.webhooks.CREATE")])
async def test_a_grant_without_the_create_scope_is_missing_scope_before_zoho(
    notifier, broker, sandbox, app_type, scope
) -> None:
    await broker.connect()  # the demo grant: no Desk write scopes
    if app_type == CRM:
        scopes = [s for s in DEMO_SCOPES if s != scope]
        token = await sandbox.add_refresh_token(scopes=scopes)
        await broker.connect(refresh_token=token, scopes=scopes)
    await sandbox.clear_calls()
    events = ["Leads.all"] if app_type == CRM else ["Ticket_Add"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifier.stub.CreateSubscription(notifier_pb2.CreateSubscriptionRequest(
            user_id="demo", app_type=app_type, events=events))
    assert reason(caught.value) == "MISSING_SCOPE"
    assert error_info(caught.value).metadata["scope"] == scope
    assert not [c for c in await sandbox.calls() if "watch" in c.path or "webhooks" in c.path]


@pytest.mark.slow
async def test_a_cursor_past_the_retention_is_cursor_expired(
    notifier, sandbox, connect_subscriber, callbacks
) -> None:
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    for i in range(3):
        await callbacks.crm(channel["notify_url"], crm_body(channel, [str(i)]))
    watcher = Watcher(notifier.stub, from_earliest=True)
    first = (await watcher.wait_for(3))[0]
    await watcher.stop()
    await notifier.app.live.log.prune(datetime_in(1))  # everything is past the retention
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in notifier.stub.WatchNotifications(
            notifier_pb2.WatchNotificationsRequest(after_cursor=first.cursor), timeout=5):
            pass
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert reason(caught.value) == "CURSOR_EXPIRED"
    # The newest pruned cursor is still a valid resume point: nothing after it was lost.
    resumed = Watcher(notifier.stub, after_cursor=format_cursor(int(first.cursor, 16) + 2))
    await resumed.started()
    await callbacks.crm(channel["notify_url"], crm_body(channel, ["new"]))
    assert [e.record_id for e in await resumed.wait_for(1)] == ["new"]
    await resumed.stop()


def datetime_in(seconds: float):
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(seconds=seconds)


@pytest.mark.slow
async def test_subscription_page_tokens_are_opaque_and_old_raw_ones_still_read(
    notifier, sandbox, connect_subscriber
) -> None:
    """Issue 23 item 3: ListSubscriptions handed out the last subscription id as the
    token; now the same opaque form as ListConnections'. A raw id still reads (tokens
    from notifiers of before); anything else is INVALID_ARGUMENT."""
    await connect_subscriber()
    first, _ = await crm_subscription(notifier, sandbox, events=("Leads.create",))
    second, _ = await crm_subscription(notifier, sandbox, events=("Deals.all",))
    listed = await notifier.stub.ListSubscriptions(
        notifier_pb2.ListSubscriptionsRequest(user_id="demo", page_size=1))
    token = listed.next_page_token
    assert token and not token.startswith("sub_")
    assert listed.subscriptions[0].subscription_id not in token
    rest = await notifier.stub.ListSubscriptions(
        notifier_pb2.ListSubscriptionsRequest(user_id="demo", page_token=token))
    raw = await notifier.stub.ListSubscriptions(notifier_pb2.ListSubscriptionsRequest(
        user_id="demo", page_token=listed.subscriptions[0].subscription_id))
    assert [s.subscription_id for s in rest.subscriptions] == [
        s.subscription_id for s in raw.subscriptions]
    assert {listed.subscriptions[0].subscription_id, rest.subscriptions[0].subscription_id} == {
        first.subscription_id, second.subscription_id}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifier.stub.ListSubscriptions(notifier_pb2.ListSubscriptionsRequest(
            user_id="demo", page_token=token[:-4] + "AAAA"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in bad_fields(caught.value)
