"""The event log's figures (notifier/events/metrics.py) say what it really stored and how
far behind it a watch really is: a delivery Zoho sends twice is counted once, and an event
replayed to a new watch shows its age, one at the head of the log none to speak of."""

from __future__ import annotations

import asyncio

import pytest

from notifier.events import metrics
from tests.live.helpers import Watcher, crm_subscription
from tests.plugins.zoho_callbacks import crm_body
from tests.waiting import until


def appended(origin: str) -> float:
    return metrics.APPENDED.labels(origin)._value.get()


def lag_observations(upper: str) -> tuple[float, float]:
    """(batches observed, of which within `upper` seconds), from the exported histogram."""
    total = within = 0.0
    for family in metrics.WATCH_LAG.collect():
        for sample in family.samples:
            if sample.name.endswith("_count"):
                total = sample.value
            elif sample.name.endswith("_bucket") and sample.labels["le"] == upper:
                within = sample.value
    return total, within


@pytest.mark.slow
async def test_appended_events_are_counted_by_origin_and_a_repeated_delivery_is_not(
    notifier, sandbox, connect_subscriber, callbacks
) -> None:
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    before = appended("callback"), appended("recovered")
    body = crm_body(channel, ["1", "2"])
    assert (await callbacks.crm(channel["notify_url"], body)).status_code == 200
    assert appended("callback") == before[0] + 2
    # The same delivery again: answered 200, and nothing new stored or counted.
    assert (await callbacks.crm(channel["notify_url"], body)).status_code == 200
    assert appended("callback") == before[0] + 2
    assert appended("recovered") == before[1]


@pytest.mark.slow
async def test_watch_lag_is_an_events_age_when_replayed_and_small_at_the_head(
    notifier, sandbox, connect_subscriber, callbacks
) -> None:
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    assert (await callbacks.crm(channel["notify_url"], crm_body(channel, ["1"]))).status_code == 200
    await asyncio.sleep(0.6)
    seen, young = lag_observations("0.5")
    watcher = Watcher(notifier.stub, from_earliest=True)
    await watcher.wait_for(1)
    # Observed once the batch is written, which may be just after the reader has it.
    await until(lambda: lag_observations("0.5")[0] == seen + 1)
    # Stored more than half a second before the watch began: not in the 0.5 s bucket.
    assert lag_observations("0.5")[1] == young

    seen, prompt = lag_observations("5.0")
    assert (await callbacks.crm(channel["notify_url"], crm_body(channel, ["2"]))).status_code == 200
    await watcher.wait_for(2)
    await until(lambda: lag_observations("5.0")[0] == seen + 1)
    assert lag_observations("5.0")[1] == prompt + 1
    await watcher.stop()
