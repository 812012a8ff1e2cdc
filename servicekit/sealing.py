"""Secrets at rest: AES-256-GCM with a key ring, each ciphertext bound to its row.

The associated data names the table, the column and the row's user_id, so a
ciphertext copied into another row or column fails to decrypt instead of
handing one user's secret to another. Stored form: `v1:<key id>:<base64(nonce|ct)>`.
The service's key variable (`BROKER_ENCRYPTION_KEY`, `NOTIFIER_ENCRYPTION_KEY`) holds
`KEY_ID:BASE64URL_32_BYTES[,...]`: the first key encrypts, every key decrypts, so keys
rotate without downtime.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import secrets
from pathlib import Path
from typing import Self, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from servicekit.config import ConfigError
from servicekit.errors import DecryptError
from servicekit.key_file import key_file_for, read_or_create

log = logging.getLogger(__name__)

_FORMAT = "v1"
# ASCII only: the id is matched as text in SQL (check_keys) and named in messages.
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class KeyRing:
    """Subclasses name the variable the keys come from (in every message)."""

    env_var = "ENCRYPTION_KEY"

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ConfigError(self.env_var, "no key given")
        self.primary_id = keys[0][0]
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}

    @classmethod
    def parse(cls, spec: str) -> Self:
        ENV_VAR = cls.env_var
        keys: list[tuple[str, bytes]] = []
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            key_id, sep, encoded = item.partition(":")
            if not sep or not key_id or not _KEY_ID.fullmatch(key_id):
                raise ConfigError(ENV_VAR, "each key must be KEY_ID:URLSAFE_BASE64_32_BYTES")
            try:
                key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            except (binascii.Error, ValueError):
                raise ConfigError(ENV_VAR, f"key {key_id!r} is not valid base64") from None
            if len(key) != 32:
                raise ConfigError(ENV_VAR, f"key {key_id!r} must be 32 bytes, got {len(key)}")
            if any(existing == key_id for existing, _ in keys):
                raise ConfigError(ENV_VAR, f"key id {key_id!r} appears twice")
            keys.append((key_id, key))
        return cls(keys)

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    def encrypt(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._ciphers[self.primary_id].encrypt(
            nonce, plaintext.encode(), context.encode()
        )
        return f"{_FORMAT}:{self.primary_id}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, stored: str, *, context: str) -> str:
        version, _, rest = stored.partition(":")
        key_id, _, payload = rest.partition(":")
        if version != _FORMAT or not payload:
            raise DecryptError("not a value this service encrypted")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptError(
                f"a stored value is encrypted under key {key_id!r}, which {self.env_var} does not "
                "hold: add that key back to the ring", key_id=key_id)
        try:
            raw = base64.b64decode(payload, validate=True)
            return cipher.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise DecryptError(
                f"a stored value under key {key_id!r} does not open with the {self.env_var} key of "
                "that id for this row and column (a different key under the same id, or an "
                "altered value)", key_id=key_id,
            ) from None

    def key_id_of(self, stored: str) -> str:
        return stored.split(":", 2)[1] if stored.count(":") >= 2 else ""


def new_key_spec(key_id: str = "k1") -> str:
    return f"{key_id}:{base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip('=')}"


def load_key_ring(
    ring: type[R], spec: str, *, sqlite_path: Path | None, sealed_in: tuple[str, str]
) -> R:
    """The key ring from the environment; for a local SQLite file with no key, a key file
    beside the database (servicekit/key_file.py), with a warning. `sealed_in` names the
    (table, column) the key seals, so an empty key file is replaced only while it is empty."""
    env_var = ring.env_var
    if spec:
        return ring.parse(spec)
    if sqlite_path is None:
        raise ConfigError(
            env_var,
            "required for this database (only a local SQLite file may use a generated key file)",
        )
    key_file = key_file_for(sqlite_path)
    stored = read_or_create(
        key_file, sqlite_path, new_key_spec("local1"), env_var=env_var, sealed_in=sealed_in
    )
    try:
        return ring.parse(stored)
    except ConfigError as problem:
        why = str(problem).removeprefix(f"{env_var}: ")
        raise ConfigError(env_var, f"the key file {key_file}: {why}") from None


R = TypeVar("R", bound=KeyRing)
