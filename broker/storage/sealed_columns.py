"""The token columns at rest: sealed with the key ring, bound to their row and column.

Tokens are encrypted here and nowhere else, with the row's user_id and the column as
associated data, so a ciphertext copied to another row or column does not open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from broker.storage.records import Connection, from_row
from servicekit import sealing

# The key ring's variable: servicekit.sealing's AES-256-GCM ring (format and binding there).
ENV_VAR = "BROKER_ENCRYPTION_KEY"


class KeyRing(sealing.KeyRing):
    env_var = ENV_VAR


def load_key_ring(spec: str, *, sqlite_path: Path | None) -> KeyRing:
    return sealing.load_key_ring(
        KeyRing, spec, sqlite_path=sqlite_path, sealed_in=("zoho_connections", "refresh_token")
    )


class SealedColumns:
    def __init__(self, keys: KeyRing) -> None:
        self.keys = keys

    def seal(self, user_id: str, column: str, value: str) -> str:
        return self.keys.encrypt(value, context=bound_to(user_id, column))

    def open(self, user_id: str, column: str, value: str | None) -> str:
        if not value:
            return ""
        return self.keys.decrypt(value, context=bound_to(user_id, column))

    def record(self, row: Any, *, with_tokens: bool) -> Connection:
        """The record of a row, its tokens opened only when asked for."""
        if not with_tokens:
            return from_row(row)
        return from_row(
            row,
            access_token=self.open(row.user_id, "access_token", row.access_token),
            refresh_token=self.open(row.user_id, "refresh_token", row.refresh_token),
        )


def bound_to(user_id: str, column: str) -> str:
    """The associated data of a token ciphertext: it opens only in its own row and column.
    Changing this string makes every stored token unreadable."""
    return f"zoho_connections:{column}:{user_id}"
