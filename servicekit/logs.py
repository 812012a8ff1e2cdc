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

REQUEST_ID_KEY = "x-request-id"
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# Zoho tokens look like 1000.<hex>.<hex>; Authorization headers and form
# bodies carry them too. Code never logs tokens on purpose; this catches the accident.
_SECRET_PATTERNS = [
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


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


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
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(service: str, *, fmt: str = "text", level: str = "INFO") -> None:
    """Logs go to stderr: stdout's first line belongs to `listening on HOST:PORT`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(
            _RedactingFormatter(
                f"%(asctime)s %(levelname)s {service} [%(request_id)s] %(name)s: %(message)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every URL at INFO, and Zoho's revoke call carries a token in its query.
    for noisy in ("httpx", "httpcore", "hpack", "aiosqlite", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
