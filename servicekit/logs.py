"""Structured logging with a request id, and a last line of defence against secrets.

Containers set LOG_FORMAT=json to get one JSON object a line. The request id
travels in the `x-request-id` metadata key; the interceptor in server.py puts it
in a context variable, so every log line of a request carries it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterable

REQUEST_ID_KEY = "x-request-id"
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# Zoho tokens look like 1000.<hex>.<hex>; Authorization headers and form
# bodies carry them too; a Desk webhook the notifier made carries its path secret after
# the subscription id (notifier/ingress/server.py). Code never logs or streams these on
# purpose; this catches the accident (and notifier/redaction.py masks streamed URLs).
_SECRET_PATTERNS = [
    (re.compile(r"(/callbacks/desk/sub_[0-9a-f]{24}/)[^/?#\s\"']+"), r"\1[redacted]"),
    (re.compile(r"\b1000\.[0-9a-zA-Z]{6,}\.[0-9a-zA-Z-]{6,}"), "[redacted]"),
    (re.compile(r"(?i)\b(zoho-oauthtoken|bearer)\s+[^\s,;\"']+"), r"\1 [redacted]"),
    (
        re.compile(r"(?i)\b((?:refresh|access)_token|client_secret|code|token)=[^&\s]+"),
        r"\1=[redacted]",
    ),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# A request id from outside is untrusted: it reaches our logs and the broker's metadata,
# so only this charset and length are taken as they are; anything else is replaced.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def trusted_request_id(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The caller's `x-request-id` if it is safe to log and forward, else a new one."""
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY:
            if isinstance(value, str) and _SAFE_REQUEST_ID.fullmatch(value):
                return value
            break
    return new_request_id()


# Every character a log reader could take for a line break or a terminal command (C0,
# DEL, C1, the Unicode line and paragraph separators), written as an escape instead.
_UNSAFE_CHARS = {
    c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
    for c in [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029]
}
_UNSAFE_CHARS[ord("\n")] = "\\n"
_UNSAFE_CHARS[ord("\r")] = "\\r"
_UNSAFE_CHARS[ord("\t")] = "\\t"


def one_line(text: str) -> str:
    """`text` with control characters escaped: one log record stays one line."""
    return text.translate(_UNSAFE_CHARS)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class _GrpcDecodeNoise(logging.Filter):
    """gRPC logs every metadata value that is not UTF-8 at ERROR, with a traceback and the
    caller's bytes: anyone could fill our logs with them. One plain line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Invalid encoding on"):
            record.msg, record.args, record.exc_info, record.exc_text = (
                "a caller sent metadata that is not UTF-8 (passed on as bytes)", (), None, None
            )
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class _PoolResetNoise(logging.Filter):
    """SQLAlchemy's pool logs, at ERROR with a traceback, each connection it could not
    roll back on its return: during a database outage, every failed call's connection.
    The call's own error says what happened; one plain WARNING line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("sqlalchemy.pool") and record.levelno >= logging.ERROR:
            failed = record.exc_info[1] if record.exc_info else None
            record.msg, record.args, record.exc_info, record.exc_text = (
                "a database connection could not be reset on its return (%s): dropped",
                (type(failed).__name__,), None, None,
            )
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class TextFormatter(logging.Formatter):
    """One line a record, whatever its message or fields hold; a traceback follows indented,
    so that no line of it (an exception's text included) can pass for a record of its own."""

    def __init__(self, service: str) -> None:
        super().__init__(
            f"%(asctime)s %(levelname)s {service} [%(request_id)s] %(name)s: %(message)s"
        )

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = dict(record.__dict__)
        fields["message"] = one_line(record.message)
        fields["request_id"] = one_line(str(getattr(record, "request_id", "-")))
        fields["name"] = one_line(record.name)
        return self._style._fmt % fields

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        extra = []
        if record.exc_info:
            extra.append(self.formatException(record.exc_info))
        if record.stack_info:
            extra.append(self.formatStack(record.stack_info))
        for block in extra:
            for part in block.splitlines():
                line += "\n    | " + one_line(part)
        return redact(line)


_JSON_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "msg": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        # json.dumps escapes C0 controls but leaves NEL and U+2028/9, which splitlines()
        # and some log shippers take for line breaks: escaped too (still valid JSON).
        return json.dumps(entry, ensure_ascii=False).translate(_JSON_LINE_BREAKS)


def setup_logging(service: str, *, fmt: str = "text", level: str = "INFO") -> None:
    """Logs go to stderr: stdout's first line belongs to `listening on HOST:PORT`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    handler.addFilter(_PoolResetNoise())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(TextFormatter(service))
    grpc_core = logging.getLogger("grpc._cython.cygrpc")
    grpc_core.filters[:] = [_GrpcDecodeNoise()]
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every URL at INFO, and Zoho's revoke call carries a token in its query.
    for noisy in ("httpx", "httpcore", "hpack", "aiosqlite", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
