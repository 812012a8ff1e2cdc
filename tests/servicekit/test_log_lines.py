"""One log record is one line, whatever a caller managed to put into it: control
characters in any field are escaped in text logs (a forged line needs a raw line break),
tracebacks follow indented, and JSON logs escape the line breaks json.dumps leaves."""

from __future__ import annotations

import io
import json
import logging

import pytest

from servicekit.logs import REQUEST_ID_KEY, request_id, setup_logging, trusted_request_id

HOSTILE = [
    "a\nb", "a\r\nb", "a\rb", "nul\x00", "esc\x1b[2J", "tab\tx", "nel\x85x", "ls\u2028x",
    "ps\u2029x", "vt\x0bff\x0cfs\x1cx", "del\x7f",
]


def _capture(fmt: str) -> tuple[io.StringIO, logging.Logger]:
    setup_logging("test", fmt=fmt, level="INFO")
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    handler.setStream(stream)  # type: ignore[attr-defined]
    return stream, logging.getLogger("tests.hostile")


@pytest.fixture(autouse=True)
def _restore_logging():
    yield
    logging.getLogger().handlers.clear()


@pytest.mark.parametrize("value", HOSTILE)
def test_a_text_record_stays_one_line_whatever_its_fields_hold(value: str) -> None:
    stream, log = _capture("text")
    token = request_id.set(value)
    try:
        log.info("user %s did %s", value, "x")
        try:
            raise ValueError(value + "\n2026-12-02 04:00:00,000 ERROR forged")
        except ValueError:
            log.exception("failed for %s", value)
    finally:
        request_id.reset(token)
    lines = stream.getvalue().splitlines()
    starts = [line for line in lines if not line.startswith("    | ")]
    assert len(starts) == 2, lines  # the two records, every other line indented under one
    assert all(line[:4].isdigit() for line in starts)
    assert not any(c in stream.getvalue() for c in "\r\x00\x1b\x85\u2028\u2029\x7f")


@pytest.mark.parametrize("value", HOSTILE)
def test_a_json_record_is_one_line_of_valid_json(value: str) -> None:
    stream, log = _capture("json")
    log.info("user %s", value)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["msg"] == f"user {value}"


@pytest.mark.parametrize("given", [
    "abc\ndef", "é", "a b", "", "x" * 65, "a\x00", "a;b", "../x", "a\u2028b", b"bytes",
])
def test_an_unsafe_request_id_is_replaced(given: str | bytes) -> None:
    taken = trusted_request_id([(REQUEST_ID_KEY, given)])
    assert taken != given and len(taken) == 16 and taken.isalnum()


@pytest.mark.parametrize("given", ["abc", "req-1.2:3_x", "A" * 64, "0"])
def test_a_safe_request_id_is_kept(given: str) -> None:
    assert trusted_request_id([("other", "x"), (REQUEST_ID_KEY, given)]) == given


def test_the_pools_reset_traceback_in_an_outage_is_one_warning_line() -> None:
    stream, _ = _capture("text")
    try:
        raise ConnectionError("server closed the connection unexpectedly")
    except ConnectionError:
        logging.getLogger("sqlalchemy.pool.impl.AsyncAdaptedQueuePool").error(
            "Exception during reset or similar", exc_info=True)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "WARNING" in lines[0] and "ConnectionError" in lines[0]
    assert "Traceback" not in stream.getvalue()
