"""Key maintenance of the stored tokens: the start-up check that the key ring opens them,
and re-encryption under the ring's first key (rotation: add a key, re-encrypt, drop the
old one). Sealing itself is sealed_columns.py; this holds the queries and the procedure."""

from __future__ import annotations

from sqlalchemy import or_, select, update

from broker.storage.connection_store import ConnectionStore
from broker.storage.sealed_columns import ENV_VAR
from broker.storage.tables import connections_table
from servicekit.config import ConfigError
from servicekit.errors import DecryptError

_conn = connections_table


async def check_keys(store: ConnectionStore) -> None:
    """At start: every stored token is under a key of the ring, and each key of the
    ring that is in use opens a token. A wrong ring stops the process here, naming
    BROKER_ENCRYPTION_KEY, before any call could read (or a refresh rewrite) a row."""
    stray = await _stray_key_id(store)
    if stray is not None:
        raise ConfigError(ENV_VAR, (
            f"stored tokens are encrypted under key {stray!r}, which is not in the ring: add "
            "it back (rotate by adding a key, re-encrypting, then dropping the old)"
        ))
    for key_id in store.keys.key_ids:
        if await _key_opens(store, key_id) is False:
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
            outcome = await _reseal(store, record.user_id)
            rewritten += outcome == "rewritten"
            missed += outcome == "changed"
        after = page[-1].user_id
    return seen, rewritten, missed


async def _stray_key_id(store: ConnectionStore) -> str | None:
    """The key id of a stored token under no key of the ring, if there is one."""
    keys = store.keys
    async with store.reading() as db:
        for column in (_conn.c.refresh_token, _conn.c.access_token):
            known = [column.startswith(f"v1:{k}:", autoescape=True) for k in keys.key_ids]
            stray = (await db.execute(
                select(_conn.c.user_id, column.label("value"))
                .where(column.is_not(None), column != "", ~or_(*known)).limit(1)
            )).first()
            if stray is not None:
                return keys.key_id_of(stray.value)
    return None


async def _key_opens(store: ConnectionStore, key_id: str) -> bool | None:
    """Whether the ring's key `key_id` opens a refresh token stored under that id
    (None: no token is stored under it)."""
    async with store.reading() as db:
        sample = (await db.execute(
            select(_conn.c.user_id, _conn.c.refresh_token)
            .where(_conn.c.refresh_token.startswith(f"v1:{key_id}:", autoescape=True))
            .limit(1)
        )).first()
    if sample is None:
        return None
    try:
        store.sealed.open(sample.user_id, "refresh_token", sample.refresh_token)
    except DecryptError:
        return False
    return True


async def _reseal(store: ConnectionStore, user_id: str) -> str:
    """Re-seals one row's tokens under the ring's first key, CAS on its version:
    "current" (already under it, or gone), "rewritten", or "changed" (written by
    someone else meanwhile: visit it again)."""
    keys, sealed = store.keys, store.sealed
    async with store.reading() as db:
        row = (await db.execute(select(_conn).where(_conn.c.user_id == user_id))).first()
    if row is None or all(
        not value or keys.key_id_of(value) == keys.primary_id
        for value in (row.access_token, row.refresh_token)
    ):
        return "current"
    record = sealed.record(row, with_tokens=True)
    sealed_access = (
        sealed.seal(user_id, "access_token", record.access_token)
        if record.access_token else None
    )
    async with store.writing() as db:
        result = await db.execute(
            update(_conn)
            .where(_conn.c.user_id == user_id, _conn.c.version == row.version)
            .values(
                access_token=sealed_access,
                refresh_token=sealed.seal(user_id, "refresh_token", record.refresh_token),
                version=row.version + 1,
            )
        )
    return "rewritten" if result.rowcount == 1 else "changed"
