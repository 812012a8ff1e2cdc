"""Opaque page tokens, one format for both services: the last key of the page before,
as base64url JSON. Callers cannot build or edit one by reading it as an id, and the
format can change without changing the API."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable

from servicekit import bounded_json
from servicekit.errors import InvalidArgument

NOT_A_TOKEN = "not a page token this service issued"


def encode(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()


def read(token: str, valid: Callable[[str], bool]) -> str | None:
    """The key a page starts after ("" for no token), or None if `token` is not one of
    ours. Decoded JSON can hold what no request field may (a NUL, a lone surrogate), so
    the key is checked by `valid`, the rule of the id it stands for, before any query."""
    if not token:
        return ""
    try:
        after = bounded_json.loads(base64.urlsafe_b64decode(token.encode("ascii")))["after"]
        if not isinstance(after, str) or not valid(after):
            return None
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        return None
    return after


def decode(token: str, valid: Callable[[str], bool], field: str = "page_token") -> str:
    after = read(token, valid)
    if after is None:
        raise InvalidArgument([(field, NOT_A_TOKEN)])
    return after
