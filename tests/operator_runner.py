"""`zoho-broker ARGS` as an operator runs it, in this process (its own event loop, on a
thread): the same code path as the console script, without a second of interpreter start
per call. Shared by the operator CLI's integration and TLS tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from broker.operator import cli as broker_cli


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


async def zoho_broker(capsys: pytest.CaptureFixture[str], *args: str) -> Ran:
    capsys.readouterr()
    code = await asyncio.to_thread(broker_cli.main, list(args))
    captured = capsys.readouterr()
    return Ran(code, captured.out, captured.err)
