"""An outage window a replica wrote down but did not get to announce (it stopped), as the
next replica finds it: announced as one `gap` per subscription that existed by the
window's end (a later one gets none), once, however often announcing is retried.

The window itself, recorded under a real PostgreSQL outage:
tests/faults/test_database_outage.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from notifier.database.models import OutageRow
from tests.live.helpers import Watcher, crm_subscription, desk_subscription


async def test_a_written_window_is_announced_once_to_the_subscriptions_of_its_time(
    notifier, sandbox, connect_subscriber
) -> None:
    await connect_subscriber()
    crm, _ = await crm_subscription(notifier, sandbox)
    desk, _ = await desk_subscription(notifier, sandbox)
    ended = datetime.now(UTC)
    await asyncio.sleep(0.05)
    later, _ = await crm_subscription(notifier, sandbox, events=("Deals.all",))
    engine = notifier.app.live.engine
    async with engine.begin() as conn:
        await conn.execute(insert(OutageRow).values(
            replica="gone:1", started_at=ended - timedelta(seconds=30), ended_at=ended,
            refused=7))
    watcher = Watcher(notifier.stub, user_id="demo", from_earliest=True)
    outages = notifier.app.live.outages
    assert await outages.announce() == 1
    assert await outages.announce() == 0
    gaps = await watcher.wait_for(2)
    await asyncio.sleep(0.3)
    await watcher.stop()
    assert sorted(g.subscription_id for g in watcher.events) == sorted(
        [crm.subscription_id, desk.subscription_id])
    assert later.subscription_id not in {g.subscription_id for g in gaps}
    for gap in gaps:
        assert gap.operation == "gap"
        assert gap.missed_until.ToDatetime(tzinfo=UTC) - gap.missed_from.ToDatetime(
            tzinfo=UTC) == timedelta(seconds=30)
    async with engine.connect() as conn:
        announced = (await conn.execute(select(OutageRow.announced_at))).scalar_one()
    assert announced is not None
