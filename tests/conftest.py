"""Fixtures live in tests/plugins, one module per component, so each test folder
can use the others' (the broker's tests need the sandbox, the notifier's need both)."""

pytest_plugins = [
    "tests.plugins.sandbox_fixtures",
    "tests.plugins.broker_fixtures",
    "tests.plugins.notifier_fixtures",
    "tests.plugins.live_fixtures",
    "tests.plugins.receiver_fixtures",
]
