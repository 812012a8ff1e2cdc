"""GetToken and RefreshToken through a real broker, a real database and the sandbox."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from sandbox.demo.tenant import DEMO_REFRESH_TOKEN
from tests.plugins.broker_fixtures import BrokerHandle, MakeBroker, ManualClock
from tests.rpc_errors import seen
from tests.waiting import until
from zoho.broker.v1 import broker_pb2
from zoho.common.v1 import common_pb2

CRM = common_pb2.APP_TYPE_CRM


def get(user_id: str = "demo", app_type: int = CRM, min_ttl: int = 0) -> broker_pb2.GetTokenRequest:
    return broker_pb2.GetTokenRequest(user_id=user_id, app_type=app_type, min_ttl_seconds=min_ttl)


async def short_lived_token(broker: BrokerHandle, first_lifetime: int, then: int = 3600) -> str:
    """A fresh refresh token whose first access token lives `first_lifetime` s."""
    token = await broker.sandbox.add_refresh_token(lifetimes=[first_lifetime, then])
    await broker.connect(refresh_token=token)
    return token


async def test_valid_token_is_served_from_memory_without_new_mints(broker: BrokerHandle) -> None:
    await broker.connect()
    first = await broker.stub.GetToken(get())
    again = [await broker.stub.GetToken(get()) for _ in range(20)]
    assert {r.access_token for r in again} == {first.access_token}
    assert first.api_domain == broker.sandbox.origin
    assert "ZohoCRM.notifications.READ" in first.scopes or any(
        s.startswith("ZohoCRM.notifications") for s in first.scopes
    )
    # The import minted once; handing the token out twenty-one times minted nothing more.
    assert await broker.sandbox.mint_count(DEMO_REFRESH_TOKEN) == 1


async def test_token_inside_the_window_is_refreshed_before_it_is_handed_out(
    broker: BrokerHandle,
) -> None:
    refresh = await short_lived_token(broker, first_lifetime=100)  # < 120 s window
    live_before = await broker.sandbox.live_access_tokens(refresh)
    reply = await broker.stub.GetToken(get())
    assert reply.access_token not in live_before
    assert reply.expires_at.ToSeconds() - (await broker.sandbox.now()) > 3000
    assert await broker.sandbox.mint_count(refresh) == 2
    # The new token and expiry were persisted: the table holds them.
    stored = await broker.broker.store.get("demo")
    assert stored is not None and stored.access_token == reply.access_token


async def test_a_refresh_reads_the_row_once_and_keeps_it_as_written(
    make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refreshed copy is built from what was written, not read back: it equals the row."""
    handle = await make_broker(BROKER_CACHE_SECONDS="60")
    await short_lived_token(handle, first_lifetime=100)  # < 120 s window
    reads = CountedReads(handle, monkeypatch)
    reply = await handle.stub.GetToken(get())
    assert reads.one_by_one == 1, "the refresher's look at the row, and no read after the write"
    copy = await handle.broker.cache.current("demo")
    monkeypatch.undo()
    stored = await handle.broker.store.get("demo")
    assert copy.access_token == reply.access_token
    assert copy == stored


async def test_fifty_racing_callers_cause_exactly_one_mint(broker: BrokerHandle) -> None:
    refresh = await short_lived_token(broker, first_lifetime=60)
    replies = await asyncio.gather(*(broker.stub.GetToken(get()) for _ in range(50)))
    assert len({r.access_token for r in replies}) == 1
    assert await broker.sandbox.mint_count(refresh) == 2  # the import and one refresh


async def test_min_ttl_longer_than_the_token_forces_one_refresh(broker: BrokerHandle) -> None:
    refresh = await short_lived_token(broker, first_lifetime=600)
    cached = await broker.stub.GetToken(get(min_ttl=300))
    assert await broker.sandbox.mint_count(refresh) == 1
    longer = await broker.stub.GetToken(get(min_ttl=1200))
    assert longer.access_token != cached.access_token
    assert await broker.sandbox.mint_count(refresh) == 2


async def _minted(broker: BrokerHandle, refresh: str, count: int) -> bool:
    return await broker.sandbox.mint_count(refresh) >= count


async def test_soft_window_hands_out_then_refreshes_once_in_background(
    broker: BrokerHandle,
) -> None:
    refresh = await short_lived_token(broker, first_lifetime=200)  # inside 300 s soft window
    first = await broker.stub.GetToken(get())
    assert await broker.sandbox.live_access_tokens(refresh) != []
    # The background refresh seen done (a positive signal) before asserting no more came.
    await until(lambda: _minted(broker, refresh, 2))
    later = [await broker.stub.GetToken(get()) for _ in range(10)]
    assert await broker.sandbox.mint_count(refresh) == 2
    assert later[-1].access_token != first.access_token


async def test_each_replica_starts_background_refreshes_at_its_own_point_of_the_soft_window(
    make_broker: MakeBroker,
) -> None:
    """Between BROKER_SOFT_REFRESH_SECONDS and halfway to BROKER_REFRESH_WINDOW_SECONDS,
    spread over connections and replicas, so tokens minted together are not all
    refreshed together by every replica."""
    a = await make_broker(BROKER_SOFT_REFRESH_SECONDS="300", BROKER_REFRESH_WINDOW_SECONDS="120")
    b = await make_broker(BROKER_SOFT_REFRESH_SECONDS="300", BROKER_REFRESH_WINDOW_SECONDS="120")
    users = [f"user-{n}" for n in range(200)]
    starts = {
        name: [handle.broker.tokens._soft_start(user) for user in users]
        for name, handle in (("a", a), ("b", b))
    }
    for points in starts.values():
        assert all(210 <= point <= 300 for point in points)
        assert max(points) - min(points) > 60  # spread over the range, not one instant
    assert starts["a"] != starts["b"]
    assert [a.broker.tokens._soft_start(user) for user in users] == starts["a"]  # stable


async def test_refresh_token_rpc_refreshes_once_for_many_reporters(broker: BrokerHandle) -> None:
    await broker.connect()
    current = await broker.stub.GetToken(get())
    await broker.sandbox.invalidate_access_token(current.access_token)
    request = broker_pb2.RefreshTokenRequest(
        user_id="demo", app_type=CRM, rejected_access_token=current.access_token
    )
    replies = await asyncio.gather(*(broker.stub.RefreshToken(request) for _ in range(20)))
    assert len({r.access_token for r in replies}) == 1
    assert replies[0].access_token != current.access_token
    assert await broker.sandbox.mint_count(DEMO_REFRESH_TOKEN) == 2
    # A late reporter of the same rejected token gets the stored one, no new mint.
    late = await broker.stub.RefreshToken(request)
    assert late.access_token == replies[0].access_token
    assert await broker.sandbox.mint_count(DEMO_REFRESH_TOKEN) == 2


async def test_unknown_user_gets_not_connected_with_the_fixed_message(
    broker: BrokerHandle,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await broker.stub.GetToken(get(user_id="nobody"))
    error = seen(caught.value)
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "NOT_CONNECTED"
    assert error.message == "Zoho is not connected for this app. Please reconnect."


async def test_revoked_refresh_token_means_reauth_and_no_more_calls_to_zoho(
    broker: BrokerHandle,
) -> None:
    refresh = await short_lived_token(broker, first_lifetime=60)
    await broker.sandbox.revoke_refresh_token(refresh)
    for _ in range(3):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await broker.stub.GetToken(get())
        assert seen(caught.value).reason == "REAUTH_REQUIRED"
    token_calls = [c for c in await broker.sandbox.calls("token")]
    assert len(token_calls) == 2  # the import, then the one refresh Zoho refused
    connection = await broker.stub.GetConnection(broker_pb2.GetConnectionRequest(user_id="demo"))
    assert connection.status == broker_pb2.CONNECTION_STATUS_REAUTH_REQUIRED
    assert "invalid_code" in connection.last_error
    # Connecting again (a new consent) brings the connection back.
    fresh = await broker.sandbox.add_refresh_token()
    await broker.connect(refresh_token=fresh)
    assert (await broker.stub.GetToken(get())).access_token


async def test_zoho_throttle_is_zoho_throttled_with_retry_info_and_stays_active(
    make_broker: MakeBroker,
) -> None:
    clock = ManualClock()
    broker = await make_broker(clock=clock)
    await short_lived_token(broker, first_lifetime=30)
    clock.advance(31)  # the stored token has expired: nothing to fall back on
    await broker.sandbox.fault("token", "throttle", count=None)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await broker.stub.GetToken(get())
    error = seen(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "ZOHO_THROTTLED")
    assert error.retry_seconds and error.retry_seconds > 0
    # Remembered: the next caller is answered without asking Zoho again.
    calls = len(await broker.sandbox.calls("token"))
    with pytest.raises(grpc.aio.AioRpcError):
        await broker.stub.GetToken(get())
    assert len(await broker.sandbox.calls("token")) == calls
    connection = await broker.stub.GetConnection(broker_pb2.GetConnectionRequest(user_id="demo"))
    assert connection.status == broker_pb2.CONNECTION_STATUS_ACTIVE


@pytest.mark.parametrize("kind", ["status_500", "no_access_token", "reset", "non_json"])
async def test_transient_failures_are_retried_then_succeed(
    broker: BrokerHandle, kind: str
) -> None:
    refresh = await short_lived_token(broker, first_lifetime=30)
    await broker.sandbox.fault("token", kind, count=1)
    reply = await broker.stub.GetToken(get())
    assert reply.access_token
    assert await broker.sandbox.mint_count(refresh) == 2


@pytest.mark.slow
async def test_http_200_without_access_token_is_a_failure_not_a_token(
    make_broker: MakeBroker,
) -> None:
    clock = ManualClock()
    broker = await make_broker(clock=clock)
    await short_lived_token(broker, first_lifetime=30)
    clock.advance(31)
    await broker.sandbox.fault("token", "no_access_token", count=None)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await broker.stub.GetToken(get())
    error = seen(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.UNAVAILABLE, "ZOHO_UNAVAILABLE")
    connection = await broker.stub.GetConnection(broker_pb2.GetConnectionRequest(user_id="demo"))
    assert connection.status == broker_pb2.CONNECTION_STATUS_ACTIVE
    assert "without access_token" in connection.last_error


@pytest.mark.slow
async def test_zoho_down_but_token_unexpired_hands_out_the_stored_token(
    broker: BrokerHandle,
) -> None:
    await short_lived_token(broker, first_lifetime=60)  # inside the window, not expired
    stored = await broker.broker.store.get("demo")
    await broker.sandbox.fault("token", "status_500", count=None)
    reply = await broker.stub.GetToken(get())
    assert stored is not None and reply.access_token == stored.access_token


@pytest.mark.slow
async def test_legacy_expires_in_sec_wins_over_milliseconds(broker: BrokerHandle) -> None:
    token = await broker.sandbox.add_refresh_token(lifetimes=[3600], legacy=True)
    connection = await broker.connect(refresh_token=token)
    lifetime = connection.token_expires_at.ToSeconds() - connection.last_refresh_time.ToSeconds()
    assert 3590 <= lifetime <= 3600


@pytest.mark.slow
async def test_broker_never_asks_zoho_for_more_than_ten_tokens_in_ten_minutes(
    make_broker: MakeBroker,
) -> None:
    clock = ManualClock()
    broker = await make_broker(clock=clock)
    refresh = await broker.sandbox.add_refresh_token(lifetimes=[10])  # every token too short
    await broker.connect(refresh_token=refresh)
    for _ in range(9):
        await broker.stub.GetToken(get())
    assert await broker.sandbox.mint_count(refresh) == 10
    clock.advance(11)  # the last token expired: no unexpired token to fall back on
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await broker.stub.GetToken(get())
    error = seen(caught.value)
    assert error.reason == "ZOHO_THROTTLED"
    assert error.metadata["source"] == "broker_budget"
    assert error.retry_seconds and 1 <= error.retry_seconds <= 600
    assert await broker.sandbox.mint_count(refresh) == 10


async def test_missing_scope_is_named_before_any_call(broker: BrokerHandle) -> None:
    token = await broker.sandbox.add_refresh_token(scopes=["ZohoCRM.notifications.READ"])
    await broker.connect(refresh_token=token, scopes=["ZohoCRM.notifications.READ"])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await broker.stub.GetToken(get(app_type=common_pb2.APP_TYPE_DESK))
    error = seen(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "MISSING_SCOPE")
    assert error.metadata["scope"] == "Desk.webhooks.READ"
    assert (await broker.stub.GetToken(get(app_type=CRM))).access_token


async def test_every_refresh_leaves_an_audit_row_without_tokens(broker: BrokerHandle) -> None:
    refresh = await short_lived_token(broker, first_lifetime=30)
    reply = await broker.stub.GetToken(get())
    from sqlalchemy import select

    from broker.storage.tables import RefreshAudit

    async with broker.broker.engine.connect() as conn:
        rows = (await conn.execute(select(RefreshAudit).order_by(RefreshAudit.id))).all()
    assert [(r.reason, r.outcome) for r in rows] == [("create", "success"), ("window", "success")]
    for row in rows:
        assert refresh not in str(tuple(row)) and reply.access_token not in str(tuple(row))
    assert rows[1].access_token_hash and rows[1].refresh_token_hash == rows[0].refresh_token_hash


class CountedReads:
    """Counts the broker's row reads: one by one (`get`) and together (`get_many`)."""

    def __init__(self, handle: BrokerHandle, monkeypatch: pytest.MonkeyPatch) -> None:
        store = handle.broker.store
        self.one_by_one = 0
        self.batches: list[int] = []
        get_one, get_many = store.get, store.get_many

        async def counted_get(user_id: str, **kw: object) -> object:
            self.one_by_one += 1
            return await get_one(user_id, **kw)  # type: ignore[arg-type]

        async def counted_get_many(user_ids: list[str]) -> object:
            self.batches.append(len(user_ids))
            return await get_many(user_ids)

        monkeypatch.setattr(store, "get", counted_get)
        monkeypatch.setattr(store, "get_many", counted_get_many)


@pytest.mark.slow
async def test_busy_connections_are_re_read_together_in_the_background(
    make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Callers of busy connections never wait for a read, and the re-reads that keep
    their copies within BROKER_CACHE_SECONDS are one query for all of them."""
    # Two seconds' cache: on a loaded 2-core machine a round of 12 calls, or the re-read
    # itself, can take several hundred ms, which with a 1 s lifetime let a copy expire first.
    a = await make_broker(BROKER_CACHE_SECONDS="2.0")
    users = [f"busy-{n}" for n in range(12)]
    for user in users:
        await a.connect(user_id=user, refresh_token=await a.sandbox.add_refresh_token(user=user))
    # Busy from here: one round first, since twelve connects on a loaded machine can take
    # longer than the copies they left behind live.
    await asyncio.gather(*(a.stub.GetToken(get(user)) for user in users))
    reads = CountedReads(a, monkeypatch)
    loop = asyncio.get_running_loop()
    until = loop.time() + 7.0  # a few cache lifetimes
    while loop.time() < until:
        await asyncio.gather(*(a.stub.GetToken(get(user)) for user in users))
        await asyncio.sleep(0.05)
    assert reads.one_by_one == 0, "a caller waited for a read of its own"
    # Every copy was re-read a few times, several rows a query: the number of queries
    # follows the cache's rhythm, not the number of connections.
    assert sum(reads.batches) >= 3 * len(users), reads.batches
    assert sum(reads.batches) >= 3 * len(reads.batches), reads.batches


@pytest.mark.slow
async def test_a_busy_connections_copy_sees_another_replicas_delete(
    make_broker: MakeBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await make_broker(BROKER_CACHE_SECONDS="0.4")
    b = await make_broker(BROKER_CACHE_SECONDS="0.4")
    await a.connect()
    await a.stub.GetToken(get())
    reads = CountedReads(a, monkeypatch)
    await b.stub.DeleteConnection(broker_pb2.DeleteConnectionRequest(user_id="demo"))
    loop = asyncio.get_running_loop()
    deleted_at, reason = loop.time(), ""
    while not reason and loop.time() < deleted_at + 5:
        try:
            await a.stub.GetToken(get())
        except grpc.aio.AioRpcError as err:
            reason = seen(err).reason
        await asyncio.sleep(0.02)
    assert reason == "NOT_CONNECTED"
    assert loop.time() - deleted_at < 1.0  # BROKER_CACHE_SECONDS plus this loop's step
    assert reads.batches  # the background re-read noticed it, not an expired copy


@pytest.mark.slow
async def test_memory_cache_sees_another_replicas_delete_and_reauth(
    make_broker: MakeBroker,
) -> None:
    """Two brokers on one database: what one changes, the other's cache notices
    within BROKER_CACHE_SECONDS."""
    a = await make_broker(BROKER_CACHE_SECONDS="0.2")
    b = await make_broker(BROKER_CACHE_SECONDS="0.2")
    await a.connect()
    assert (await a.stub.GetToken(get())).access_token  # now cached in a
    await b.stub.DeleteConnection(broker_pb2.DeleteConnectionRequest(user_id="demo"))
    await asyncio.sleep(0.3)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await a.stub.GetToken(get())
    assert seen(caught.value).reason == "NOT_CONNECTED"

    refresh = await a.sandbox.add_refresh_token(lifetimes=[3600])
    await a.connect(refresh_token=refresh)
    assert (await b.stub.GetToken(get())).access_token  # now cached in b
    # a learns the grant is dead (a rejected token, then invalid_code) and marks it.
    await a.sandbox.revoke_refresh_token(refresh)
    stale = await a.stub.GetToken(get())
    with pytest.raises(grpc.aio.AioRpcError):
        await a.stub.RefreshToken(broker_pb2.RefreshTokenRequest(
            user_id="demo", rejected_access_token=stale.access_token))
    await asyncio.sleep(0.3)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await b.stub.GetToken(get())
    assert seen(caught.value).reason == "REAUTH_REQUIRED"
