"""Pytest fixtures for the Zoho sandbox.

- `sandbox_origin` (session): a real `python -m sandbox` subprocess on a free port; its origin.
- `sandbox` (function, async): a `SandboxControl` on that process, reset to the demo tenant
  before the test. `sandbox.origin` is the base URL for Zoho calls.
- `run_sandbox` (re-exported): `async with run_sandbox("127.0.0.1", 0) as origin:` serves it
  in-process on the current event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from sandbox.app import run_sandbox
from sandbox.control.client import SandboxControl
from tests.plugins.processes import ServiceProcess

__all__ = ["run_sandbox", "sandbox", "sandbox_origin", "start_sandbox_process"]


def start_sandbox_process(*args: str) -> ServiceProcess:
    """`python -m sandbox --listen 127.0.0.1:0 ARGS`, started and listening."""
    return ServiceProcess("sandbox", {}, "--listen", "127.0.0.1:0", *args)


@pytest.fixture(scope="session")
def sandbox_origin() -> Iterator[str]:
    process = start_sandbox_process()
    try:
        yield process.origin
    finally:
        process.terminate()


@pytest.fixture
async def sandbox(sandbox_origin: str) -> AsyncIterator[SandboxControl]:
    async with SandboxControl(sandbox_origin) as control:
        await control.reset()
        yield control
