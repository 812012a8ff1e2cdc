"""The notifier's database lost under live deliveries, through a TCP proxy the test cuts
(the shared PostgreSQL keeps serving every other test).

Injected: every connection from the notifier to PostgreSQL closed, and new ones refused,
for a few seconds, past the ingress's 1 s lookup cache; then the database back.
Asserted: every delivery meanwhile (a verified one, a forged one) is 503 with
Retry-After, never a 500, and no traceback is logged; the first delivery once the
database is back is stored (200: the writer does not reuse its dead connection); the
window of refusals is written to notifier_outages and each subscription's watchers get
one `gap` event spanning it, once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from notifier.app import NotifierApp
from notifier.database import DATABASE
from servicekit.runner import running
from tests.live.helpers import Watcher, crm_subscription, desk_subscription
from tests.plugins import broker_fixtures
from tests.plugins.notifier_fixtures import events_config, notifier_config
from tests.plugins.tcp_proxy import TcpProxy
from tests.plugins.zoho_callbacks import crm_body, desk_event
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.faults,
    pytest.mark.skipif(broker_fixtures.test_database_kind() != "postgres",
                       reason="cuts the notifier off PostgreSQL; runs with TEST_DATABASE=postgres"),
]


class _Handle:
    def __init__(self, app: NotifierApp, address: str) -> None:
        self.app = app
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = notifier_pb2_grpc.NotifierServiceStub(self.channel)


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    url = make_url(broker_fixtures.POSTGRES_ADMIN_URL)
    proxy = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def cut_notifier(sandbox, broker, notifier_database_url, proxy) -> AsyncIterator[_Handle]:
    """A notifier whose database is reached through `proxy` (keeper off: only the
    ingress and the writer use the database)."""
    url = make_url(notifier_database_url).set(host="127.0.0.1", port=proxy.port)
    through = url.render_as_string(hide_password=False)
    config = notifier_config(sandbox.origin, broker.address, through,
                             events=events_config(through))
    config = type(config)(**{**config.__dict__,
                             "keeper": type(config.keeper)(enabled=False)})
    app = NotifierApp(config)
    async with running(app, grace=0, migrate=False) as address:
        handle = _Handle(app, address)
        try:
            yield handle
        finally:
            await handle.channel.close()


def _outages(database_url: str) -> list[Any]:
    engine = create_engine(DATABASE.sync_url(database_url))
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT replica, started_at, ended_at, refused, announced_at FROM notifier_outages"
        )).all()
    engine.dispose()
    return list(rows)


async def test_a_database_outage_is_503_then_stored_again_and_announced_as_a_gap(
    cut_notifier, sandbox, connect_subscriber, callbacks, proxy, notifier_database_url, caplog
) -> None:
    caplog.set_level(logging.INFO)
    await connect_subscriber()
    crm, channel = await crm_subscription(cut_notifier, sandbox)
    desk, url = await desk_subscription(cut_notifier, sandbox)
    watcher = Watcher(cut_notifier.stub, user_id="demo", from_earliest=True)
    assert (await callbacks.crm(channel["notify_url"], crm_body(channel, ["1"]))).status_code \
        == 200
    await watcher.wait_for(1)

    proxy.cut()
    await asyncio.sleep(1.2)  # the lookup cache (1 s) has expired: every lookup fails
    forged = channel["notify_url"].rsplit("/", 1)[0] + "/sub_" + "0" * 24
    answers = [
        await callbacks.crm(channel["notify_url"], crm_body(channel, ["2"])),
        await callbacks.crm(forged, crm_body(channel, ["3"])),
        await callbacks.desk(url, [desk_event("Ticket_Add", "4")]),
    ]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"].isdigit()
    assert cut_notifier.app.live.outages.open
    # The gRPC side meets the same outage: UNAVAILABLE, never INTERNAL.
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await cut_notifier.stub.ListSubscriptions(
            notifier_pb2.ListSubscriptionsRequest(user_id="demo"), timeout=15)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()

    proxy.restore()
    back = await callbacks.crm(channel["notify_url"], crm_body(channel, ["5"]))
    assert back.status_code == 200, back.text  # not 503 for a dead kept connection

    # The window is written down and each subscription's watchers hear of it once.
    async with asyncio.timeout(15):
        while len([e for e in watcher.events if e.operation == "gap"]) < 2:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    gaps = [e for e in watcher.events if e.operation == "gap"]
    assert sorted(e.subscription_id for e in gaps) == sorted(
        [crm.subscription_id, desk.subscription_id])
    [window] = _outages(notifier_database_url)
    assert window.refused == 3 and window.announced_at is not None
    for gap in gaps:
        assert gap.missed_from.ToDatetime() <= gap.missed_until.ToDatetime()
        assert gap.missed_until.seconds >= gap.missed_from.seconds
    assert [e.record_id for e in watcher.events if e.operation != "gap"] == ["1", "5"]
    await watcher.stop()
    # Announcing again (a restart) adds nothing: each gap's key names the window.
    assert await cut_notifier.app.live.outages.announce() == 0
    # SQLAlchemy's pool logs each dead connection it drops (one WARNING line in the
    # process: servicekit/logs.py); the rest, ours and aiohttp's, must be clean.
    tracebacks = [r for r in caplog.records if (r.exc_info or r.levelno >= logging.ERROR)
                  and not r.name.startswith("sqlalchemy.pool")]
    assert not tracebacks, [r.getMessage() for r in tracebacks]
