"""Tokens at rest: servicekit.sealing's AES-256-GCM key ring, read from
BROKER_ENCRYPTION_KEY (see servicekit/sealing.py for the format and the binding)."""

from __future__ import annotations

from pathlib import Path

from servicekit import sealing
from servicekit.sealing import new_key_spec

__all__ = ["ENV_VAR", "KeyRing", "load_key_ring", "new_key_spec"]

ENV_VAR = "BROKER_ENCRYPTION_KEY"


class KeyRing(sealing.KeyRing):
    env_var = ENV_VAR


def load_key_ring(spec: str, *, sqlite_path: Path | None) -> KeyRing:
    return sealing.load_key_ring(
        KeyRing, spec, sqlite_path=sqlite_path, sealed_in=("zoho_connections", "refresh_token")
    )
