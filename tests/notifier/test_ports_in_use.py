"""A port already in use at start is a start-up fault like any other: exit 2 and one line
naming the variable and the address, no traceback, for every port of both services (the
notifier's gRPC, ingress and metrics ports; the broker's gRPC and metrics ports)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from tests.plugins.broker_fixtures import TEST_KEY
from tests.plugins.processes import REPO_ROOT

# Each starts and stops a real process: in make test, not the inner loop.
pytestmark = pytest.mark.slow


@pytest.fixture
def taken() -> Iterator[str]:
    """An address someone else is listening on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield f"127.0.0.1:{holder.getsockname()[1]}"


def _start(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    folder = tempfile.mkdtemp(prefix="ports-in-use-")
    defaults = {
        "notifier": {
            "NOTIFIER_LISTEN": "127.0.0.1:0", "NOTIFIER_INGRESS_LISTEN": "127.0.0.1:0",
            "NOTIFIER_DATABASE_URL": f"sqlite:///{folder}/notifier.db",
            "NOTIFIER_BROKER_TARGET": "127.0.0.1:1", "NOTIFIER_ENCRYPTION_KEY": TEST_KEY,
            "LOG_LEVEL": "ERROR",
        },
        "broker": {
            "BROKER_LISTEN": "127.0.0.1:0", "BROKER_ENCRYPTION_KEY": TEST_KEY,
            "BROKER_DATABASE_URL": f"sqlite:///{folder}/broker.db",
            "ZOHO_CLIENT_ID": "1000.TEST", "ZOHO_CLIENT_SECRET": "secret", "LOG_LEVEL": "ERROR",
        },
    }[module]
    return subprocess.run(
        [sys.executable, "-m", module], env={**os.environ, **defaults, **env},
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize(("module", "variable"), [
    ("notifier", "NOTIFIER_INGRESS_LISTEN"),
    ("notifier", "NOTIFIER_LISTEN"),
    ("notifier", "NOTIFIER_METRICS_LISTEN"),
    ("broker", "BROKER_LISTEN"),
    ("broker", "BROKER_METRICS_LISTEN"),
])
def test_a_port_in_use_stops_the_process_with_one_line_naming_it(
    module: str, variable: str, taken: str
) -> None:
    done = _start(module, {variable: taken})
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert variable in lines[0] and taken in lines[0] and "in use" in lines[0]
    assert "Traceback" not in done.stderr


def test_the_older_metrics_port_setting_is_named_too(taken: str) -> None:
    port = taken.rsplit(":", 1)[1]
    done = _start("notifier", {"NOTIFIER_METRICS_PORT": port})
    assert done.returncode == 2, done.stderr
    assert "NOTIFIER_METRICS_PORT" in done.stderr and "Traceback" not in done.stderr
