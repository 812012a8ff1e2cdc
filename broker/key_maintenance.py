"""Key maintenance of the stored tokens: the start-up check that the key ring opens them,
and re-encryption under the ring's first key (rotation: add a key, re-encrypt, drop the
old one). Row access and sealing stay in broker/store.py; this holds the procedure."""

from __future__ import annotations

from broker.crypto import ENV_VAR
from broker.store import ConnectionStore
from servicekit.config import ConfigError


async def check_keys(store: ConnectionStore) -> None:
    """At start: every stored token is under a key of the ring, and each key of the
    ring that is in use opens a token. A wrong ring stops the process here, naming
    BROKER_ENCRYPTION_KEY, before any call could read (or a refresh rewrite) a row."""
    stray = await store.stray_key_id()
    if stray is not None:
        raise ConfigError(ENV_VAR, (
            f"stored tokens are encrypted under key {stray!r}, which is not in the ring: add "
            "it back (rotate by adding a key, re-encrypting, then dropping the old)"
        ))
    for key_id in store.keys.key_ids:
        if await store.key_opens(key_id) is False:
            raise ConfigError(ENV_VAR, (
                f"key {key_id!r} does not open the tokens stored under that id: "
                "a different key was given the same id"
            ))


async def reencrypt_all(store: ConnectionStore, batch: int = 200) -> tuple[int, int]:
    """Re-encrypts every token under the first key; returns (rows, rows rewritten).

    Each row is CAS-written, so a concurrent refresh is never overwritten; a
    row that changed under us is simply visited again in the next pass.
    """
    total = rewritten = 0
    for _ in range(10):
        seen, done, missed = await _reencrypt_pass(store, batch)
        total, rewritten = seen, rewritten + done
        if not missed:
            return total, rewritten
    raise RuntimeError("rows kept changing during re-encryption; run it again")


async def _reencrypt_pass(store: ConnectionStore, batch: int) -> tuple[int, int, int]:
    seen = rewritten = missed = 0
    after = ""
    while page := await store.list_after(after, batch):
        for record in page:
            seen += 1
            outcome = await store.reseal(record.user_id)
            rewritten += outcome == "rewritten"
            missed += outcome == "changed"
        after = page[-1].user_id
    return seen, rewritten, missed
