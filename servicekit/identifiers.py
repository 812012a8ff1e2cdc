"""The one definition of each identifier's rule, shared by the broker and the notifier.

Every rule is ASCII only and matched whole (`fullmatch`): `str.isdigit` accepts "²³"
and Arabic-Indic digits, and a regex ending in `$` accepts a trailing newline, so a
value one service stored could be refused by the other, or reach Zoho as sent.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# Desk's orgId, and the ids of its webhooks: decimal digits.
DESK_ID_MAX = 32
_DESK_ID = re.compile(rf"[0-9]{{1,{DESK_ID_MAX}}}")
# CRM notification channel ids: digits, Zoho's own limit is far below 64.
CHANNEL_ID_MAX = 64
_CHANNEL_ID = re.compile(rf"[0-9]{{1,{CHANNEL_ID_MAX}}}")
# A CRM module's API name (Leads, Deals, Custom_Module1).
_MODULE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")
# A CRM notification event: {Module}.{create|edit|delete|all}.
_CRM_EVENT = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}\.(?:create|edit|delete|all)")
# The notifier's subscription ids: sub_ and 24 hex digits (12 random bytes).
_SUBSCRIPTION_ID = re.compile(r"sub_[0-9a-f]{24}")
# An OAuth scope as Zoho writes them (ZohoCRM.notifications.READ, Desk.basic.READ).
SCOPE_MAX = 200
_SCOPE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._-]{{0,{SCOPE_MAX - 1}}}")
# A decimal number (ports, counters): ASCII digits only, so int() never meets "²".
_DECIMAL = re.compile(r"[0-9]{1,18}")
URL_MAX = 2048
# A DNS name as a certificate's identity: labels of letters, digits and hyphens, no
# wildcard, no trailing dot, at most 253 characters.
_DNS_NAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


def is_desk_id(value: str) -> bool:
    return _DESK_ID.fullmatch(value) is not None


DESK_ORG_ID_RULE = f"must be ASCII digits (Desk's orgId), at most {DESK_ID_MAX}"


def desk_org_id(value: object) -> str | None:
    """Desk's orgId as text, or None when `value` is not one. Desk's JSON gives it as a
    number or a string; the broker stores it, the notifier reads it back and from Desk."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value if isinstance(value, str) and is_desk_id(value) else None


def is_channel_id(value: str) -> bool:
    return _CHANNEL_ID.fullmatch(value) is not None


def is_module(value: str) -> bool:
    return _MODULE.fullmatch(value) is not None


def is_crm_event(value: str) -> bool:
    return _CRM_EVENT.fullmatch(value) is not None


def is_subscription_id(value: str) -> bool:
    return _SUBSCRIPTION_ID.fullmatch(value) is not None


def is_scope(value: str) -> bool:
    return _SCOPE.fullmatch(value) is not None


def is_dns_name(value: str) -> bool:
    return _DNS_NAME.fullmatch(value) is not None


def is_decimal(value: str) -> bool:
    return _DECIMAL.fullmatch(value) is not None


def is_http_url(value: str) -> bool:
    """An absolute http(s) URL with a host, printable ASCII, that every parser reads
    the same way: urlsplit raises on `http://[x` and on a bad port, so it is asked here
    (and its answer trusted) instead of in code that would turn the error into INTERNAL."""
    if not value or len(value) > URL_MAX or not value.isascii() or not value.isprintable():
        return False
    if any(c.isspace() or c in '<>"\\^`{|}' for c in value):
        return False
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    return port is None or port > 0


def is_clean_text(value: str) -> bool:
    """Text every database here can store and every JSON body to Zoho can carry:
    PostgreSQL refuses NUL, and a lone surrogate (which protobuf's Python strings can
    hold) cannot be encoded as UTF-8 by the database drivers or by httpx."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
