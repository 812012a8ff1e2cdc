"""The ingress with its database gone, fed hypothesis-generated deliveries: verified and
forged, CRM and Desk, URL checks, bodies valid, malformed and empty.

Injected: the engines the ingress reads and writes through swapped for one whose every
connection fails (the database lost mid-request: whatever the kind of database under
test), after a CRM and a Desk subscription were made.
Asserted: no answer is a 500; every 503 carries Retry-After; nothing is logged at ERROR
and no traceback; once the database is back, a delivery is stored (200). The gRPC side
alike: an RPC that meets the lost database is UNAVAILABLE / BACKEND_UNAVAILABLE (metadata
`dependency=database`), never INTERNAL.

The database loss on real PostgreSQL, a proxy cut mid-stream, and the gap events that
follow are tests/faults/test_database_outage.py."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import create_async_engine

from tests.fuzz.test_rpc_fuzz import FUZZ
from tests.live.helpers import CRM, crm_subscription, desk_subscription
from tests.plugins.zoho_callbacks import crm_body, desk_event
from tests.rpc_errors import error_info
from zoho.notifier.v1 import notifier_pb2 as pb

pytestmark = pytest.mark.fuzz


@pytest.fixture
async def lost(notifier, sandbox, connect_subscriber, tmp_path) -> Any:
    """(notifier, channel, desk url) with every connection to the database failing."""
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    _, url = await desk_subscription(notifier, sandbox)
    live = notifier.app.live
    kept = (live.directory._engine, live.log.engine)
    gone = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/notifier.db")
    live.directory._engine = gone
    live.log.engine = gone
    live.directory._cache.clear()
    await live.writer._drop_connection()
    yield notifier, channel, url
    live.directory._engine, live.log.engine = kept
    await gone.dispose()


def _requests(channel: dict[str, Any], url: str) -> st.SearchStrategy[tuple[str, str, Any]]:
    crm_url = channel["notify_url"]
    base = crm_url.split("/callbacks/")[0]
    paths = st.sampled_from([
        crm_url, crm_url[:-1] + "0", base + "/callbacks/crm/sub_" + "f" * 24, url,
        url.rsplit("/", 1)[0] + "/" + "A" * 43, base + "/callbacks/desk/nope/x",
    ])
    bodies = st.one_of(
        st.just(crm_body(channel, ["1"])),
        st.just([desk_event("Ticket_Add", "2")]),
        st.just(b""),
        st.binary(max_size=200),
        st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4),
    )
    return st.tuples(st.sampled_from(["POST", "POST", "GET"]), paths, bodies)


@FUZZ
@given(data=st.data())
async def test_a_lost_database_is_503_with_retry_after_never_a_500(
    lost: Any, callbacks: Any, caplog: pytest.LogCaptureFixture, data: st.DataObject
) -> None:
    caplog.set_level(logging.INFO)
    _, channel, url = lost
    method, path, body = data.draw(_requests(channel, url))
    if isinstance(body, bytes):
        answer = await callbacks.http.request(method, path, content=body)
    else:
        answer = await callbacks.http.request(method, path, json=body)
    assert answer.status_code != 500, (method, path, answer.text)
    assert answer.status_code in {200, 400, 401, 404, 405, 409, 410, 503}, answer.status_code
    if answer.status_code == 503:
        assert answer.headers["Retry-After"].isdigit()
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


async def test_deliveries_are_stored_again_once_the_database_is_back(
    notifier, sandbox, connect_subscriber, callbacks, tmp_path
) -> None:
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    live = notifier.app.live
    kept = live.directory._engine
    live.directory._engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/no/x.db")
    live.directory._cache.clear()
    refused = await callbacks.crm(channel["notify_url"], crm_body(channel, ["1"]))
    assert refused.status_code == 503
    live.directory._engine = kept
    stored = await callbacks.crm(channel["notify_url"], crm_body(channel, ["2"]))
    assert stored.status_code == 200


async def test_rpcs_with_the_database_lost_are_unavailable_not_internal(
    notifier, sandbox, connect_subscriber, tmp_path, caplog
) -> None:
    caplog.set_level(logging.INFO)
    await connect_subscriber()
    gone = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/x.db")
    notifier.app.subscriptions._store.engine = gone
    live = notifier.app.live
    live.log.engine = gone
    stub = notifier.stub
    calls = [
        stub.ListSubscriptions(pb.ListSubscriptionsRequest(user_id="demo"), timeout=10),
        stub.GetSubscription(pb.GetSubscriptionRequest(
            user_id="demo", subscription_id="sub_" + "0" * 24), timeout=10),
        stub.CreateSubscription(pb.CreateSubscriptionRequest(
            user_id="demo", app_type=CRM, events=["Leads.all"]), timeout=10),
        _first(stub.WatchNotifications(pb.WatchNotificationsRequest(user_id="demo"),
                                       timeout=10)),
    ]
    for pending in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await pending
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
        info = error_info(caught.value)
        assert info.reason == "BACKEND_UNAVAILABLE"
        assert info.metadata["dependency"] == "database"
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]
    await gone.dispose()


async def _first(call: Any) -> Any:
    return await call.read()
