"""Log lines an outsider can cause come at most once per interval (servicekit/log_rate.py):
asyncio's accept() failures (EMFILE) were an ERROR with a traceback per attempt."""

from __future__ import annotations

import asyncio
import errno
import logging
import time

import pytest

from servicekit.log_rate import Occasional, limit_accept_failure_logs
from servicekit.metrics import ACCEPT_FAILURES


def test_an_occasional_warning_is_logged_once_per_interval_with_the_count_held_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    occasional = Occasional(logging.getLogger("test"), interval=0.2)
    for _ in range(100):
        occasional.warning("refused %s", "x")
    assert [r.getMessage() for r in caplog.records] == ["refused x"]
    time.sleep(0.25)
    occasional.warning("refused %s", "y")
    assert caplog.records[-1].getMessage() == (
        "refused y (and 99 more like it since the last such line)")


async def test_accept_failures_are_one_counted_warning_not_a_traceback_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    loop = asyncio.get_running_loop()
    before = ACCEPT_FAILURES._value.get()
    seen_other: list[str] = []
    loop.set_exception_handler(lambda _, context: seen_other.append(context["message"]))
    limit_accept_failure_logs(loop)
    limit_accept_failure_logs(loop)  # a second ingress in the process: still one handler
    failure = OSError(errno.EMFILE, "Too many open files")
    for _ in range(500):
        loop.call_exception_handler(
            {"message": "socket.accept() out of system resource", "exception": failure})
    loop.call_exception_handler({"message": "something else"})
    lines = [r for r in caplog.records if "accept" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
    assert not lines[0].exc_info and "Too many open files" in lines[0].getMessage()
    assert ACCEPT_FAILURES._value.get() - before == 500
    assert seen_other == ["something else"]
    loop.set_exception_handler(None)
