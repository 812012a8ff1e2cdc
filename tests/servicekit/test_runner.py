"""The runner the CLIs and the fixtures share: the first line, SIGTERM to a drained stop
and exit code 0, and a stop even when the start failed."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from servicekit.runner import run_until_signal, running


class FakeService:
    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.events: list[str] = []

    async def start(self, *, migrate: bool = True) -> str:
        self.events.append(f"start migrate={migrate}")
        if self.fail:
            raise RuntimeError("cannot start")
        return "127.0.0.1:1234"

    async def stop(self, grace: float | None = None) -> None:
        self.events.append(f"stop grace={grace}")


async def test_sigterm_stops_the_service_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    service = FakeService()

    def sigterm_once_listening() -> None:
        service.events.append("started")
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)

    code = await asyncio.wait_for(
        run_until_signal(service, on_started=sigterm_once_listening, migrate=False), 5
    )
    assert code == 0
    assert service.events == ["start migrate=False", "started", "stop grace=None"]
    assert capsys.readouterr().out.splitlines()[0] == "listening on 127.0.0.1:1234"


async def test_the_first_line_names_what_listens(capsys: pytest.CaptureFixture[str]) -> None:
    service = FakeService()
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
    assert await run_until_signal(service, first_line="ingress listening on") == 0
    assert capsys.readouterr().out.startswith("ingress listening on 127.0.0.1:1234\n")


async def test_a_failed_start_is_stopped_and_raised() -> None:
    service = FakeService(fail=True)
    with pytest.raises(RuntimeError, match="cannot start"):
        async with running(service, grace=0):
            pytest.fail("never reached")
    assert service.events == ["start migrate=True", "stop grace=0"]


async def test_running_stops_with_the_grace_given() -> None:
    service = FakeService()
    async with running(service, grace=0, migrate=False) as address:
        assert address == "127.0.0.1:1234"
    assert service.events == ["start migrate=False", "stop grace=0"]
