"""Hostile Zoho answers, and SSRF: a "Zoho" (an allowed origin we control) answering
truncated or non-JSON bodies, wrong types, huge bodies, oversized pages, redirects to
another host, and API domains outside the allowed origins.

Asserted each time: a typed error (a status with an ErrorInfo reason, never INTERNAL or
UNKNOWN) or a proper result; nothing half-written (no row created, or the row exactly as
before and its valid token still served); and the trap, an origin nobody allowed, was
never contacted, whatever Zoho's answer named or redirected to.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from aiohttp import web
from sqlalchemy import create_engine, text

from broker.storage.tables import DATABASE
from notifier.app import NotifierApp
from sandbox.control.client import SandboxControl
from tests.plugins.broker_fixtures import BrokerHandle, MakeBroker, ManualClock
from tests.plugins.notifier_fixtures import notifier_config
from tests.rpc_errors import seen
from tests.security.hostile import HostileZoho, Trap, serve
from zoho.broker.v1 import broker_pb2
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

SCOPES = ["ZohoCRM.notifications.READ"]
TYPED = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INVALID_ARGUMENT,
         grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED}


@pytest.fixture
async def hostile() -> AsyncIterator[HostileZoho]:
    async with serve(HostileZoho()) as server:
        assert isinstance(server, HostileZoho)
        yield server


@pytest.fixture
async def trap() -> AsyncIterator[Trap]:
    async with serve(Trap()) as server:
        assert isinstance(server, Trap)
        yield server


def good_token(api_domain: str, access_token: str = "1000.good") -> web.Response:
    return web.json_response({"access_token": access_token, "expires_in": 3600,
                              "api_domain": api_domain, "token_type": "Bearer"})


Reply = Callable[[HostileZoho, Trap], Callable[[web.Request], web.StreamResponse]]


def constant(make: Callable[[HostileZoho, Trap], web.StreamResponse]) -> Reply:
    return lambda hostile, trap: lambda request: make(hostile, trap)


BAD_TOKEN_ANSWERS: dict[str, Reply] = {
    "truncated": constant(lambda h, t: web.Response(
        body=b'{"access_token":"1000.tr', content_type="application/json")),
    "non_json": constant(lambda h, t: web.Response(text="<html>Sign in</html>",
                                                    content_type="text/html")),
    "a_list": constant(lambda h, t: web.json_response([{"access_token": "1000.x"}])),
    "token_a_number": constant(lambda h, t: web.json_response(
        {"access_token": 12345, "expires_in": 3600, "api_domain": h.origin})),
    "token_an_object": constant(lambda h, t: web.json_response(
        {"access_token": {"x": 1}, "expires_in": 3600, "api_domain": h.origin})),
    "expires_in_a_word": constant(lambda h, t: web.json_response(
        {"access_token": "1000.x", "expires_in": "soon", "api_domain": h.origin})),
    "expires_in_negative": constant(lambda h, t: web.json_response(
        {"access_token": "1000.x", "expires_in": -5, "api_domain": h.origin})),
    "expires_in_huge": constant(lambda h, t: web.json_response(
        {"access_token": "1000.x", "expires_in": 10**30, "api_domain": h.origin})),
    "huge_body": constant(lambda h, t: web.json_response(
        {"error": "x" * (8 * 1024 * 1024)})),
    "redirect_302": constant(lambda h, t: web.Response(
        status=302, headers={"Location": t.origin + "/oauth/v2/token"})),
    "redirect_307": constant(lambda h, t: web.Response(
        status=307, headers={"Location": t.origin + "/oauth/v2/token"})),
    # Text JSON carries but no header, database or UTF-8 encoder takes (issue 11 item 3).
    "token_lone_surrogate": constant(lambda h, t: web.json_response(
        {"access_token": "1000.\ud800x", "expires_in": 3600, "api_domain": h.origin})),
    "token_with_nul": constant(lambda h, t: web.json_response(
        {"access_token": "1000.a\x00b", "expires_in": 3600, "api_domain": h.origin})),
    "error_with_nul_and_surrogate": constant(lambda h, t: web.json_response(
        {"error": "invalid_client\x00\udc80", "error_description": "\ud800"})),
    # Past the interpreter's recursion limit: RecursionError is no ValueError (issue 22).
    "deeply_nested": constant(lambda h, t: web.Response(
        body=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")),
    "api_domain_elsewhere": constant(lambda h, t: good_token(t.origin)),
    "api_domain_metadata_ip": constant(lambda h, t: good_token("http://169.254.169.254")),
}


def rows(database_url: str) -> list[tuple[Any, ...]]:
    engine = create_engine(DATABASE.sync_url(database_url))
    with engine.connect() as conn:
        found = conn.execute(text(
            "SELECT user_id, access_token, refresh_token, api_domain, status, version "
            "FROM zoho_connections ORDER BY user_id")).all()
    engine.dispose()
    return [tuple(r) for r in found]


def assert_typed(error: grpc.aio.AioRpcError) -> None:
    got = seen(error)
    assert got.code in TYPED, (got.code, got.message)
    assert got.reason and got.reason != "INTERNAL", got


@pytest.mark.slow
@pytest.mark.parametrize("answer", list(BAD_TOKEN_ANSWERS))
async def test_a_hostile_token_answer_at_connect_writes_nothing(
    make_broker: MakeBroker, sandbox: SandboxControl, hostile: HostileZoho, trap: Trap,
    database_url: str, answer: str,
) -> None:
    handle = await make_broker(ZOHO_EXTRA_ORIGINS=f"{sandbox.origin},{hostile.origin}",
                               BROKER_ZOHO_TIMEOUT_SECONDS="5")
    hostile.reply = BAD_TOKEN_ANSWERS[answer](hostile, trap)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await handle.stub.CreateConnection(broker_pb2.CreateConnectionRequest(
            user_id="eve", accounts_server=hostile.origin, api_domain=hostile.origin,
            refresh_token="1000.stolen", scopes=SCOPES), timeout=30)
    assert_typed(caught.value)
    assert rows(database_url) == []
    assert hostile.hits  # Zoho was asked...
    assert trap.hits == []  # ...and nothing went where its answer pointed


@pytest.mark.slow
@pytest.mark.parametrize("answer", list(BAD_TOKEN_ANSWERS))
async def test_a_hostile_refresh_answer_leaves_the_row_and_serves_the_held_token(
    make_broker: MakeBroker, sandbox: SandboxControl, hostile: HostileZoho, trap: Trap,
    database_url: str, answer: str,
) -> None:
    clock = ManualClock()
    handle = await make_broker(clock=clock, BROKER_ZOHO_TIMEOUT_SECONDS="5",
                               ZOHO_EXTRA_ORIGINS=f"{sandbox.origin},{hostile.origin}")
    hostile.reply = lambda request: good_token(hostile.origin, "1000.held")
    await handle.stub.CreateConnection(broker_pb2.CreateConnectionRequest(
        user_id="eve", accounts_server=hostile.origin, api_domain=hostile.origin,
        refresh_token="1000.refresh", scopes=SCOPES), timeout=30)
    before = rows(database_url)
    hostile.reply = BAD_TOKEN_ANSWERS[answer](hostile, trap)
    clock.advance(3600 - 100)  # inside the refresh window, still valid
    reply = await handle.stub.GetToken(broker_pb2.GetTokenRequest(user_id="eve"), timeout=30)
    assert reply.access_token == "1000.held"
    assert reply.api_domain == hostile.origin
    after = rows(database_url)
    # The lease came and went (version), nothing else changed: same tokens, same domain.
    assert [r[:5] for r in after] == [r[:5] for r in before]
    assert trap.hits == []


# -- the notifier reading hostile CRM pages ----------------------------------------------


def crm_page(items: list[dict[str, Any]], more: Any = False) -> web.Response:
    return web.json_response({"watch": items, "info": {"more_records": more,
                                                       "per_page": 200, "page": 1}})


def channel(n: int) -> dict[str, Any]:
    return {"channel_id": str(1000 + n), "events": ["Leads.create"],
            "channel_expiry": "2030-01-01T00:00:00+00:00", "resource_name": "Leads",
            "resource_id": "1", "resource_uri": "https://x", "notify_url": "https://hook",
            "token": "secret"}


BAD_PAGES: dict[str, Callable[[HostileZoho, Trap], web.StreamResponse]] = {
    "truncated": lambda h, t: web.Response(body=b'{"watch":[{"channel_id":"1',
                                           content_type="application/json"),
    "non_json": lambda h, t: web.Response(text="<html>maintenance</html>",
                                          content_type="text/html"),
    "watch_a_string": lambda h, t: web.json_response({"watch": "all of them",
                                                      "info": {"more_records": False}}),
    "items_wrong_types": lambda h, t: crm_page([{"channel_id": {"a": 1}, "events": "x",
                                                 "channel_expiry": 5}]),
    "more_records_a_word": lambda h, t: crm_page([channel(1)], more="maybe"),
    "huge_body": lambda h, t: web.json_response({"watch": [], "pad": "x" * (8 * 1024 * 1024)}),
    "redirect": lambda h, t: web.Response(status=302, headers={"Location": t.origin + "/crm"}),
    "oversized_page": lambda h, t: crm_page([channel(n) for n in range(5000)]),
    "deeply_nested": lambda h, t: web.Response(body=b'{"watch":' + b"[" * 100_000,
                                               content_type="application/json"),
}


@pytest.mark.slow
@pytest.mark.parametrize("answer", list(BAD_PAGES))
async def test_hostile_crm_pages_are_typed_errors_and_nothing_leaves_for_other_hosts(
    make_broker: MakeBroker, sandbox: SandboxControl, hostile: HostileZoho, trap: Trap,
    answer: str,
) -> None:
    origins = f"{sandbox.origin},{hostile.origin}"
    handle: BrokerHandle = await make_broker(ZOHO_EXTRA_ORIGINS=origins)

    def reply(request: web.Request) -> web.StreamResponse:
        if request.path == "/oauth/v2/token":
            return good_token(hostile.origin)
        return BAD_PAGES[answer](hostile, trap)

    hostile.reply = reply
    await handle.stub.CreateConnection(broker_pb2.CreateConnectionRequest(
        user_id="eve", accounts_server=hostile.origin, api_domain=hostile.origin,
        refresh_token="1000.refresh", scopes=SCOPES), timeout=30)
    app = NotifierApp(notifier_config(sandbox.origin, handle.address,
                                      extra_origins=(sandbox.origin, hostile.origin)))
    address = await app.start()
    items: list[notifier_pb2.Notification] = []
    try:
        async with grpc.aio.insecure_channel(address) as channel_:
            stub = notifier_pb2_grpc.NotifierServiceStub(channel_)
            try:
                async for item in stub.ListNotifications(notifier_pb2.ListNotificationsRequest(
                        user_id="eve", app_type=common_pb2.APP_TYPE_CRM), timeout=30):
                    items.append(item)
                outcome: grpc.aio.AioRpcError | None = None
            except grpc.aio.AioRpcError as err:
                outcome = err
    finally:
        await app.stop(0)
    assert outcome is not None, f"{len(items)} items passed off as a complete list"
    assert_typed(outcome)
    assert trap.hits == []
    assert all("secret" not in json.dumps(str(i)) for i in items)


async def test_an_api_domain_outside_the_origins_is_refused_before_any_request(
    broker: BrokerHandle, sandbox: SandboxControl, trap: Trap
) -> None:
    # Injected: the sandbox's own refresh answer names the trap as the API domain.
    refresh = await sandbox.add_refresh_token(api_origin=trap.origin)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await broker.connect(refresh_token=refresh)
    assert seen(caught.value).reason == "ORIGIN_NOT_ALLOWED"
    assert await broker.broker.store.count() == 0
    await asyncio.sleep(0)
    assert trap.hits == []


async def test_an_oversized_desk_page_is_refused_not_streamed() -> None:
    import httpx

    from notifier.broker_client import BrokerToken
    from notifier.config import RetryPolicy
    from notifier.desk import DeskClient
    from notifier.zoho_http import ZohoHttp
    from servicekit.deadline import Deadline
    from servicekit.errors import ZohoBadResponse

    hooks = [{"id": str(n), "name": "h", "url": "https://hook", "isEnabled": True,
              "subscriptions": {}, "createdTime": "2024-01-01T00:00:00.000Z"}
             for n in range(500)]
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"data": hooks}))
    async with httpx.AsyncClient(transport=transport) as client:
        desk = DeskClient(ZohoHttp(client, RetryPolicy(max_attempts=1)))
        with pytest.raises(ZohoBadResponse, match="500 webhooks; 50 were asked"):
            await desk.list_page(BrokerToken("t", "https://desk.zoho.eu"), "https://desk.zoho.eu",
                                 "1", start=1, limit=50, deadline=Deadline.unbounded())
