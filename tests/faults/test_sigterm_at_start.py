"""SIGTERM the moment a service says `listening on`: a supervisor (or a test) that stops a
process it just started must see a clean exit 0, never a death by the signal (-15)."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from sandbox.control.client import SandboxControl
from tests.plugins.broker_fixtures import BrokerHandle
from tests.plugins.processes import ServiceProcess

pytestmark = pytest.mark.faults

STARTS = 8


def _sigterm_right_after_listening(module: str, env: dict[str, str]) -> list[int]:
    codes = []
    for _ in range(STARTS):
        process = ServiceProcess(module, env)  # returns as soon as the line is read
        os.kill(process.pid, signal.SIGTERM)
        codes.append(process.proc.wait(timeout=30))
    return codes


async def test_the_broker_exits_zero_on_sigterm_right_after_listening(
    broker_env: dict[str, str],
) -> None:
    env = {**broker_env, "BROKER_GRACE_SECONDS": "0"}
    assert await asyncio.to_thread(_sigterm_right_after_listening, "broker", env) == [0] * STARTS


async def test_the_notifier_exits_zero_on_sigterm_right_after_listening(
    sandbox: SandboxControl, broker: BrokerHandle
) -> None:
    env = {
        "NOTIFIER_LISTEN": "127.0.0.1:0",
        "NOTIFIER_BROKER_TARGET": broker.address,
        "ZOHO_EXTRA_ORIGINS": sandbox.origin,
        "NOTIFIER_HEALTH_INTERVAL_SECONDS": "0.05",
    }
    # In a thread: the in-process broker keeps serving the notifier's health probes.
    codes = await asyncio.to_thread(_sigterm_right_after_listening, "notifier", env)
    assert codes == [0] * STARTS
