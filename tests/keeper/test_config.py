"""The keeper's settings: defaults as the spec gives them, bad values named."""

from __future__ import annotations

import pytest

from notifier.config import NotifierConfig
from servicekit.config import ConfigError


def test_defaults() -> None:
    keeper = NotifierConfig.from_env({}).keeper
    assert keeper.renew_before_seconds == 172800
    assert keeper.reconcile_seconds == 3600
    assert keeper.enabled and keeper.clock_url == ""
    assert keeper.concurrency <= 5  # within CRM's Free edition limit


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NOTIFIER_RENEW_BEFORE_SECONDS", "soon"),
        ("NOTIFIER_RENEW_BEFORE_SECONDS", "700000"),
        ("NOTIFIER_RECONCILE_SECONDS", "0"),
        ("NOTIFIER_KEEPER_CONCURRENCY", "50"),
        ("NOTIFIER_KEEPER", "maybe"),
        ("NOTIFIER_KEEPER_CLOCK_URL", "ftp://x"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        NotifierConfig.from_env({name: value})
