"""Pytest fixtures for the Zoho sandbox.

- `sandbox_origin` (session): a real `python -m sandbox` subprocess on a free port; its origin.
- `sandbox` (function, async): a `SandboxControl` on that process, reset to the demo tenant
  before the test. `sandbox.origin` is the base URL for Zoho calls.
- `run_sandbox` (re-exported): `async with run_sandbox("127.0.0.1", 0) as origin:` serves it
  in-process on the current event loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sandbox.app import run_sandbox
from sandbox.control_client import SandboxControl

__all__ = ["run_sandbox", "sandbox", "sandbox_origin", "start_sandbox_process"]

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 20.0


def start_sandbox_process(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start `python -m sandbox --listen 127.0.0.1:0 ARGS`; returns (process, origin)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--listen", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=env,
    )
    first_line: list[str] = []
    reader = threading.Thread(
        target=lambda: first_line.append(proc.stdout.readline() if proc.stdout else ""),
        daemon=True,
    )
    reader.start()
    reader.join(START_TIMEOUT_SECONDS)
    line = first_line[0].strip() if first_line else ""
    if not line.startswith("listening on "):
        proc.kill()
        _, err = proc.communicate(timeout=5)
        raise RuntimeError(f"sandbox did not start (first line {line!r}); stderr:\n{err}")
    return proc, "http://" + line.removeprefix("listening on ")


def stop_sandbox_process(proc: subprocess.Popen[str]) -> int:
    proc.terminate()
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=5)


@pytest.fixture(scope="session")
def sandbox_origin() -> Iterator[str]:
    proc, origin = start_sandbox_process()
    # Drain stderr so a chatty process can never block on a full pipe.
    drain = threading.Thread(target=lambda: proc.stderr and proc.stderr.read(), daemon=True)
    drain.start()
    try:
        yield origin
    finally:
        stop_sandbox_process(proc)


@pytest.fixture
async def sandbox(sandbox_origin: str) -> AsyncIterator[SandboxControl]:
    async with SandboxControl(sandbox_origin) as control:
        await control.reset()
        yield control
