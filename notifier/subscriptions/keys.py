"""The key ring sealing CRM channel tokens: NOTIFIER_ENCRYPTION_KEY (or, for a local
SQLite file, a generated key file beside it, as the broker does)."""

from __future__ import annotations

from notifier.database import DATABASE
from servicekit import sealing


class NotifierKeyRing(sealing.KeyRing):
    env_var = "NOTIFIER_ENCRYPTION_KEY"


def load_keys(spec: str, database_url: str) -> NotifierKeyRing:
    return sealing.load_key_ring(
        NotifierKeyRing, spec, sqlite_path=DATABASE.sqlite_file(database_url),
        sealed_in=("notifier_subscriptions", "secret_sealed"),
    )
