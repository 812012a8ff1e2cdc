"""Every typed error a ListNotifications caller can see, as the caller sees it."""

from __future__ import annotations

import grpc
import pytest

from servicekit.errors import NOT_CONNECTED_MESSAGE
from tests.notifier.helpers import (
    CRM,
    DESK,
    collect,
    fail_crm_watch_from_request,
    invalidate_token_before_watch_call,
    list_request,
)
from tests.rpc_errors import bad_fields, error_info, reason, retry_info
from zoho.common.v1 import common_pb2


async def list_error(notifier, request, **kw) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await collect(notifier.stub, request, **kw)
    return caught.value


@pytest.mark.slow
@pytest.mark.parametrize(
    ("request_fields", "fields"),
    [
        ({"app_type": common_pb2.APP_TYPE_UNSPECIFIED}, {"app_type"}),
        ({"user_id": ""}, {"user_id"}),
        ({"page_size": 201}, {"page_size"}),
        ({"page_size": -1}, {"page_size"}),
        ({"app_type": DESK, "page_size": 101}, {"page_size"}),
        (
            {"user_id": "", "page_size": 500, "channel_id": "abc"},
            {"user_id", "page_size", "channel_id"},
        ),
    ],
)
async def test_malformed_requests_name_every_bad_field(
    sandbox, notifier, request_fields, fields
) -> None:
    request = list_request(**{"user_id": "demo", "app_type": CRM, **request_fields})
    err = await list_error(notifier, request)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(err) == fields
    assert (await sandbox.call_counts()).get("crm.watch", 0) == 0


@pytest.mark.slow
@pytest.mark.parametrize("app_type", [CRM, DESK])
async def test_no_connection_passes_the_brokers_error_through(
    sandbox, broker, notifier, app_type
) -> None:
    err = await list_error(notifier, list_request(user_id="nobody", app_type=app_type))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(err) == "NOT_CONNECTED"
    assert err.details() == NOT_CONNECTED_MESSAGE


@pytest.mark.slow
async def test_revoked_grant_passes_reauth_required_through(sandbox, broker, notifier) -> None:
    await broker.connect()
    await sandbox.revoke_refresh_token("1000.sandbox.demo-refresh")
    err = await list_error(notifier, list_request())
    assert reason(err) == "REAUTH_REQUIRED"


async def test_crm_scope_mismatch_is_missing_scope_naming_it(sandbox, broker, notifier) -> None:
    # The broker believes the grant covers CRM; Zoho knows better.
    refresh = await sandbox.add_refresh_token(scopes=["Desk.basic.READ", "Desk.webhooks.READ"])
    await broker.connect(refresh_token=refresh, scopes=["ZohoCRM.notifications.READ"])
    err = await list_error(notifier, list_request())
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(err)
    assert info.reason == "MISSING_SCOPE"
    assert info.metadata["scope"] == "ZohoCRM.notifications.READ"


@pytest.mark.slow
async def test_desk_scope_mismatch_is_missing_scope_naming_it(sandbox, broker, notifier) -> None:
    refresh = await sandbox.add_refresh_token(scopes=["Desk.basic.READ"])
    await broker.connect(refresh_token=refresh, scopes=["Desk.basic.READ", "Desk.webhooks.READ"])
    err = await list_error(notifier, list_request(app_type=DESK))
    info = error_info(err)
    assert info.reason == "MISSING_SCOPE"
    assert info.metadata["scope"] == "Desk.webhooks.READ"


@pytest.mark.slow
async def test_429_is_throttled_with_retry_info_and_not_retried(sandbox, broker, notifier) -> None:
    await broker.connect()
    await sandbox.fault("crm.watch", "throttle")
    err = await list_error(notifier, list_request())
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert reason(err) == "ZOHO_THROTTLED"
    assert retry_info(err) is not None
    assert (await sandbox.call_counts())["crm.watch"] == 1


@pytest.mark.slow
async def test_v8_throttle_body_gives_its_retry_after(sandbox, broker, notifier) -> None:
    await broker.connect()
    await sandbox.configure(crm_throttle_code="TOO_MANY_REQUESTS", crm_retry_after_seconds=17)
    await sandbox.fault("crm.watch", "throttle")
    err = await list_error(notifier, list_request())
    assert reason(err) == "ZOHO_THROTTLED"
    delay = retry_info(err)
    assert delay is not None and delay.retry_delay.seconds == 17


@pytest.mark.slow
async def test_authorization_failed_is_a_rejected_token_refreshed_once(
    sandbox, broker, notifier
) -> None:
    await broker.connect()
    await sandbox.configure(crm_token_error_code="AUTHORIZATION_FAILED")
    notifier.http.before = invalidate_token_before_watch_call(sandbox, 1)
    items = await collect(notifier.stub, list_request())
    assert len(items) == 250
    assert [c.status for c in await sandbox.calls("crm.watch")] == [401, 200, 200]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["status_500", "reset"])
async def test_transient_failures_are_retried_and_the_list_completes(
    sandbox, broker, notifier, kind
) -> None:
    await broker.connect()
    await sandbox.fault("crm.watch", kind, count=2)
    items = await collect(notifier.stub, list_request())
    assert len(items) == 250
    assert (await sandbox.call_counts())["crm.watch"] == 2 + 2  # two failures, two pages


@pytest.mark.slow
async def test_5xx_that_persists_ends_as_unavailable_after_bounded_retries(
    sandbox, broker, notifier
) -> None:
    await broker.connect()
    await sandbox.fault("crm.watch", "status_500", count=None)
    err = await list_error(notifier, list_request())
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert reason(err) == "ZOHO_UNAVAILABLE"
    assert (await sandbox.call_counts())["crm.watch"] == notifier.app.config.retry.max_attempts


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["malformed", "non_json"])
@pytest.mark.parametrize(("app_type", "route"), [(CRM, "crm.watch"), (DESK, "desk.webhooks")])
async def test_malformed_bodies_are_a_typed_error(
    sandbox, broker, notifier, kind, app_type, route
) -> None:
    await broker.connect()
    await sandbox.fault(route, kind)
    err = await list_error(notifier, list_request(app_type=app_type))
    assert reason(err) == "ZOHO_BAD_RESPONSE"


@pytest.mark.slow
async def test_zoho_refusing_the_request_is_rejected_with_zohos_code(
    sandbox, broker, notifier
) -> None:
    await broker.connect()
    err = await list_error(notifier, list_request(module="NoSuchModule"))
    info = error_info(err)
    assert (info.reason, info.metadata["zoho_code"]) == ("ZOHO_REJECTED", "INVALID_MODULE")


@pytest.mark.slow
async def test_an_error_after_some_items_ends_the_stream_with_its_status(
    sandbox, broker, notifier
) -> None:
    await broker.connect()
    notifier.http.before = fail_crm_watch_from_request(sandbox, 2)
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for item in notifier.stub.ListNotifications(list_request(page_size=100)):
            received.append(item)
    assert len(received) == 100
    assert reason(caught.value) == "ZOHO_UNAVAILABLE"


@pytest.mark.slow
async def test_the_callers_deadline_bounds_the_zoho_request(sandbox, broker, notifier) -> None:
    await broker.connect()
    await sandbox.fault("crm.watch", "hang", count=None)
    err = await list_error(notifier, list_request(), timeout=1.0)
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The request Zoho never answered does not outlive the call, and is not retried past it.
    await notifier.http.until(lambda spy: spy.in_flight == 0)
    assert (await sandbox.call_counts())["crm.watch"] == 1


@pytest.mark.slow
async def test_a_caller_that_cancels_cancels_the_request_in_flight(
    sandbox, broker, notifier
) -> None:
    await broker.connect()
    await sandbox.fault("crm.watch", "hang", count=None)
    call = notifier.stub.ListNotifications(list_request())
    reading = call.read()
    await notifier.http.until(lambda spy: spy.in_flight == 1)
    call.cancel()
    with pytest.raises(BaseException):  # noqa: B017 - CancelledError, whatever its module
        await reading
    await notifier.http.until(lambda spy: spy.in_flight == 0)
    assert notifier.http.cancelled == 1


async def test_broker_unreachable_is_unavailable(sandbox) -> None:
    from notifier.app import NotifierApp
    from tests.plugins.notifier_fixtures import notifier_config
    from zoho.notifier.v1 import notifier_pb2_grpc

    app = NotifierApp(notifier_config(sandbox.origin, "127.0.0.1:1"))
    address = await app.start()
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = notifier_pb2_grpc.NotifierServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await collect(stub, list_request())
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert reason(caught.value) == "BACKEND_UNAVAILABLE"
    finally:
        await app.stop(0)
