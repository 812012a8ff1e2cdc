"""NotifierConfig.from_env: defaults stated once, the shared settings, metrics and grace."""

from __future__ import annotations

import pytest

from notifier.app import NotifierApp
from notifier.config import NotifierConfig
from servicekit.config import ConfigError, ListenAddress
from tests.plugins.notifier_fixtures import notifier_config


def test_an_empty_environment_gives_the_dataclass_defaults() -> None:
    # from_env reads its defaults from the dataclasses, so the two cannot drift apart.
    assert NotifierConfig.from_env({}) == NotifierConfig()


def test_metrics_listen_is_host_and_port_like_the_brokers() -> None:
    config = NotifierConfig.from_env({"NOTIFIER_METRICS_LISTEN": "0.0.0.0:9464"})
    assert config.metrics_listen == ListenAddress("0.0.0.0", 9464)
    assert config.metrics_port == 9464


def test_the_older_metrics_port_still_serves_on_the_grpc_host() -> None:
    config = NotifierConfig.from_env(
        {"NOTIFIER_LISTEN": "10.0.0.5:50052", "NOTIFIER_METRICS_PORT": "9464"}
    )
    assert config.metrics_listen == ListenAddress("10.0.0.5", 9464)


def test_metrics_listen_wins_over_the_older_port() -> None:
    config = NotifierConfig.from_env(
        {"NOTIFIER_METRICS_LISTEN": "127.0.0.1:9500", "NOTIFIER_METRICS_PORT": "9464"}
    )
    assert config.metrics_listen == ListenAddress("127.0.0.1", 9500)


def test_metrics_are_off_by_default() -> None:
    assert NotifierConfig.from_env({}).metrics_listen is None


def test_grace_seconds() -> None:
    assert NotifierConfig.from_env({}).grace_seconds == 5.0
    assert NotifierConfig.from_env({"NOTIFIER_GRACE_SECONDS": "12.5"}).grace_seconds == 12.5


def test_the_per_user_subscription_cap() -> None:
    assert NotifierConfig.from_env({}).events.max_subscriptions_per_user == 200
    assert NotifierConfig.from_env(
        {"NOTIFIER_MAX_SUBSCRIPTIONS_PER_USER": "5"}).events.max_subscriptions_per_user == 5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NOTIFIER_GRACE_SECONDS", "-1"),
        ("NOTIFIER_GRACE_SECONDS", "soon"),
        ("NOTIFIER_METRICS_LISTEN", "nowhere"),
        ("LOG_LEVEL", "LOUD"),
        ("LOG_FORMAT", "xml"),
        ("ZOHO_EXTRA_ORIGINS", "http://127.0.0.1:1/path"),
        ("NOTIFIER_MAX_SUBSCRIPTIONS_PER_USER", "0"),
        ("NOTIFIER_MAX_SUBSCRIPTIONS_PER_USER", "many"),
    ],
)
def test_a_bad_value_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        NotifierConfig.from_env({variable: value})
    assert caught.value.variable == variable


def test_shared_settings_are_normalised_alike() -> None:
    config = NotifierConfig.from_env({"LOG_LEVEL": "debug", "LOG_FORMAT": "JSON"})
    assert (config.log_level, config.log_format) == ("DEBUG", "json")


async def test_the_app_drains_for_its_grace_seconds() -> None:
    app = NotifierApp(
        notifier_config("http://127.0.0.1:1", "127.0.0.1:1", grace_seconds=12.5)
    )
    try:
        assert app.server.grace_seconds == 12.5
    finally:
        await app.broker_channel.close()


def test_the_ingress_bounds_are_read_from_the_environment() -> None:
    config = NotifierConfig.from_env({
        "NOTIFIER_INGRESS_HEADER_TIMEOUT_SECONDS": "2.5",
        "NOTIFIER_INGRESS_IDLE_TIMEOUT_SECONDS": "7",
        "NOTIFIER_INGRESS_MAX_CONNECTIONS": "300",
        "NOTIFIER_INGRESS_MAX_CONNECTIONS_PER_PEER": "300",
        "NOTIFIER_INGRESS_MAX_EVENTS_PER_DELIVERY": "100",
        "NOTIFIER_INGRESS_MAX_FIELDS_PER_EVENT": "50",
        "NOTIFIER_INGRESS_MAX_VALUES_BYTES": "65536",
        "NOTIFIER_INGRESS_MAX_STORED_BYTES_PER_DELIVERY": "1048576",
        "NOTIFIER_MAX_STREAMS_PER_ADDRESS": "40",
    })
    connections, deliveries = config.events.ingress_connections, config.events.ingress_deliveries
    assert (connections.header_timeout_seconds, connections.idle_timeout_seconds) == (2.5, 7.0)
    assert (connections.max_connections, connections.max_connections_per_peer) == (300, 300)
    assert (deliveries.max_events, deliveries.max_fields_per_event) == (100, 50)
    assert (deliveries.max_values_bytes, deliveries.max_stored_bytes) == (65536, 1 << 20)
    assert config.streams.max_streams_per_address == 40
    # The listen addresses know their variable, for a start-up error naming it.
    assert config.events.ingress_listen.variable == "NOTIFIER_INGRESS_LISTEN"
    assert config.listen.variable == "NOTIFIER_LISTEN"


@pytest.mark.parametrize("seconds", ["1", "5", "900", "2592000", "31536000"])
def test_any_sweep_period_from_one_second_up_is_taken(seconds: str) -> None:
    # SPEC: "any value from 1 up is allowed" (a 30-day or yearly sweep included).
    config = NotifierConfig.from_env({"NOTIFIER_SWEEP_SECONDS": seconds})
    assert config.capture.sweep_seconds == float(seconds)


@pytest.mark.parametrize("seconds", ["0.5", "-1", "inf", "nan", "soon"])
def test_a_sweep_period_below_one_second_or_not_a_number_is_refused(seconds: str) -> None:
    with pytest.raises(ConfigError) as caught:
        NotifierConfig.from_env({"NOTIFIER_SWEEP_SECONDS": seconds})
    assert caught.value.variable == "NOTIFIER_SWEEP_SECONDS"


def test_a_sweep_period_of_zero_turns_the_sweep_off() -> None:
    assert NotifierConfig.from_env({"NOTIFIER_SWEEP_SECONDS": "0"}).capture.sweep_seconds == 0
