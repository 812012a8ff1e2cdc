"""Get Records' page tokens: opaque, expiring, and bound to the request that made them.

A token remembers where its page ended (the last record's sort key), not an offset: a record
changed between two pages moves in Modified_Time order without shifting the next page, as a
database cursor behaves. It also remembers the request's other parameters (fields, sort,
per_page, ids, If-Modified-Since, module, org): a next request that differs is Zoho's
TOKEN_BOUND_DATA_MISMATCH; one after `page_token_expiry` is EXPIRED_VALUE.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sandbox.record_set import Key

MAX_TOKENS = 100_000


@dataclass(frozen=True, slots=True)
class PageToken:
    binding: tuple[object, ...]  # everything about the request except page and page_token
    last: Key  # sort key of the last record served
    served: int  # records served before the next page
    page: int  # the next page's number
    expires_at: float


class PageTokens:
    def __init__(self) -> None:
        self._tokens: dict[str, PageToken] = {}

    def clear(self) -> None:
        self._tokens.clear()

    def mint(self, token: PageToken) -> str:
        if len(self._tokens) >= MAX_TOKENS:
            # Oldest first: dicts keep insertion order.
            del self._tokens[next(iter(self._tokens))]
        name = secrets.token_hex(24)
        self._tokens[name] = token
        return name

    def get(self, name: str) -> PageToken | None:
        return self._tokens.get(name)
