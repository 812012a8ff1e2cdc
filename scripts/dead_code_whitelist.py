"""Names vulture reports as unused that are used, by a framework rather than by our code.

Read by `make deadcode` (vulture, see pyproject's [tool.vulture]); never imported. A new
entry needs the reason it is alive beside it.
"""
# ruff: noqa: B018, F821
# grpc and logging call these by name
_.intercept_service  # grpc.aio.ServerInterceptor
_.format  # logging.Formatter
_.levelno  # logging.LogRecord, set for the formatter
_.asctime  # logging.LogRecord, set for the formatter
_.Export  # an OpenTelemetry exporter's method (tests/servicekit/test_tracing.py)
# SQLAlchemy TypeDecorator protocol (servicekit/database.py)
impl
cache_ok
_.process_bind_param
_.process_result_value
# a column the database holds and the keeper reads by table (notifier/database/models.py)
secret_sealed
# holds the task so it is not collected while it runs (broker/app.py)
_._damage_report
# __aexit__'s signature (sandbox/control/client.py)
exc_type
tb
# pytest reads these by name
pytestmark
pytest_plugins
notifier_postgres  # a fixture, requested by name through getfixturevalue
_restore_logging  # an autouse fixture
other_ca  # tests/security/conftest.py: the second CA's path, kept with its certificates
