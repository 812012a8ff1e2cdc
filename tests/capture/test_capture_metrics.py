"""The gauges the capture alerts (deploy/prometheus/) stand on hold the right values: the
watermark lag is Zoho's now minus covered_until and leaves with its subscription; the
credits left are the budget less what Zoho counted as spent, 0 with the gap that leaves
open, and the open gap reads 0 again once the window is read."""

from __future__ import annotations

from datetime import UTC, timedelta

from prometheus_client import Gauge
from sqlalchemy import select

from notifier.capture import metrics
from notifier.capture.models import CreditOrg
from tests.capture.conftest import SETTLE, SWEEP, Captured, captured_notifier, subscribed
from tests.live.helpers import crm_subscription
from zoho.notifier.v1 import notifier_pb2 as pb


def sampled(gauge: Gauge) -> dict[tuple[str, ...], float]:
    """The gauge's children as exported: label values -> value."""
    return {
        tuple(sample.labels.values()): sample.value
        for family in gauge.collect() for sample in family.samples
    }


async def test_watermark_lag_is_now_minus_covered_until_and_leaves_with_the_subscription(
    captured: Captured, sandbox, connect_subscriber
) -> None:
    await connect_subscriber()
    sub = await subscribed(captured)
    covered = (await captured.subscription(sub.subscription_id)).covered_until
    now = captured.capture.clock.now()
    await captured.capture.publish(now)
    lag = (now - covered.ToDatetime(tzinfo=UTC)).total_seconds()
    assert SETTLE <= lag < SETTLE + 60  # read back: only the unsettled seconds remain
    assert sampled(metrics.LAG)[(sub.subscription_id,)] == lag
    assert sampled(metrics.MAX_LAG)[("crm",)] == lag

    # Nothing read for ten minutes of Zoho's time: the lag is ten minutes longer.
    await captured.capture.publish(now + timedelta(minutes=10))
    assert sampled(metrics.LAG)[(sub.subscription_id,)] == lag + 600
    assert sampled(metrics.MAX_LAG)[("crm",)] == lag + 600

    await captured.stub.DeleteSubscription(pb.DeleteSubscriptionRequest(
        user_id="demo", subscription_id=sub.subscription_id), timeout=10)
    await captured.capture.publish(now + timedelta(minutes=20))
    assert (sub.subscription_id,) not in sampled(metrics.LAG)
    # Not its last value, which would keep a lag alert firing for a subscription gone.
    assert ("crm",) not in sampled(metrics.MAX_LAG)


async def test_credits_left_count_down_to_zero_and_the_gap_they_leave_closes_when_they_return(
    sandbox, broker, notifier_database_url, connect_subscriber
) -> None:
    await connect_subscriber()
    # Two credits a day: the first read (deleted records + one COQL call) spends them.
    async with captured_notifier(sandbox, broker, notifier_database_url,
                                 credits_per_day=2) as captured:
        sub, _ = await crm_subscription(captured.handle, sandbox, events=("Leads.all",))
        before = (await sandbox.credits("crm"))["used"]
        await captured.advance(SETTLE + 1)
        spent = (await sandbox.credits("crm"))["used"] - before
        assert spent > 0
        async with captured.handle.app.live.engine.connect() as conn:
            orgs = (await conn.execute(select(CreditOrg.org_key))).scalars().all()
        # Learning the org (GET /org) is charged to the connection; the reads to the org.
        [org] = [key for key in orgs if not key.startswith("crm:conn:")]
        await captured.capture.publish(captured.capture.clock.now())
        assert sampled(metrics.CREDITS_PER_DAY)[()] == 2
        left = sampled(metrics.CREDITS_REMAINING)
        assert sum(2 - left[(key,)] for key in orgs) == spent  # as Zoho counted them

        await sandbox.delivery_fault("drop", count=1, subscription=sub.zoho_id)
        await sandbox.change_records("crm", "Leads", "insert", [{"values": {"Company": "Broke"}}])
        await captured.advance(SWEEP + SETTLE)
        await captured.capture.publish(captured.capture.clock.now())
        assert sampled(metrics.CREDITS_REMAINING)[(org,)] == 0
        assert sampled(metrics.OPEN_GAPS)[("CREDITS_EXHAUSTED",)] == 1

        await captured.advance(86400 + 60)  # the day's spends age out; the retry is due
        await captured.events(sub.subscription_id, 2)  # the gap, then the change read back
        await captured.capture.publish(captured.capture.clock.now())
        assert sampled(metrics.OPEN_GAPS)[("CREDITS_EXHAUSTED",)] == 0
        assert sampled(metrics.CREDITS_REMAINING)[(org,)] < 2
