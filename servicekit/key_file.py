"""The generated key file of a local SQLite service started without its encryption key
(BROKER_ENCRYPTION_KEY, NOTIFIER_ENCRYPTION_KEY).

Written once, atomically (a private temporary file, fsync, then a link to the final name,
which fails rather than replace a key another process wrote first), so a crash or a full
disk during the first start leaves either no key file or a whole one. A key file found
empty (written before this was so) is replaced only when no token was sealed yet; a key
file other users may read is refused: it opens every stored refresh token.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import tempfile
from pathlib import Path

from servicekit.config import ConfigError

log = logging.getLogger(__name__)


def key_file_for(sqlite_path: Path) -> Path:
    return sqlite_path.with_name(sqlite_path.name + ".key")


def read_or_create(
    key_file: Path, sqlite_path: Path, new_spec: str, *, env_var: str, sealed_in: tuple[str, str]
) -> str:
    """The key spec in `key_file`, creating the file with `new_spec` when it may be.
    `sealed_in` names the (table, column) whose values the key seals."""
    if not key_file.exists():
        created = _create(key_file, new_spec, env_var)
        if created:
            log.warning(
                "%s is not set: generated a key in %s (mode 0600). Back it up with the "
                "database; set %s for anything but local use.", env_var, key_file, env_var,
            )
        # Another process may have won the race: the file on disk is the key either way.
    _refuse_if_shared(key_file, env_var)
    spec = _read(key_file, env_var)
    if not spec:
        sealed = _sealed_rows(sqlite_path, sealed_in, env_var)
        if sealed:
            raise ConfigError(env_var, (
                f"the key file {key_file} is empty (a crash or a full disk while it was "
                f"first written?) but the database holds {sealed} token(s) sealed under a "
                "key: restore the key file from its backup, or set BROKER_ENCRYPTION_KEY"
            ))
        log.warning("the key file %s was empty and no token is sealed yet: writing a new key",
                    key_file)
        key_file.unlink()
        _create(key_file, new_spec, env_var)
        spec = _read(key_file, env_var)
    log.warning("%s is not set: using the key file %s", env_var, key_file)
    return spec


def _read(key_file: Path, env_var: str) -> str:
    try:
        return key_file.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(env_var, f"cannot read the key file {key_file}: {exc}") from None


def _refuse_if_shared(key_file: Path, env_var: str) -> None:
    try:
        mode = stat.S_IMODE(os.stat(key_file).st_mode)
    except OSError as exc:
        raise ConfigError(env_var, f"cannot read the key file {key_file}: {exc}") from None
    if mode & 0o077:
        raise ConfigError(env_var, (
            f"the key file {key_file} may be read by other users (mode {mode:04o}); it opens "
            f"every stored token: `chmod 600 {key_file}` (and check who read it)"
        ))


def _create(key_file: Path, spec: str, env_var: str) -> bool:
    """Writes `spec` to `key_file` unless it exists. True when this call wrote it."""
    try:
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=key_file.parent, prefix=f".{key_file.name}.")
    except OSError as exc:
        raise ConfigError(env_var, f"cannot write the key file {key_file}: {exc}") from None
    try:
        with os.fdopen(fd, "w") as handle:  # mkstemp made it 0600
            handle.write(spec + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, key_file)
        except FileExistsError:
            return False
        _fsync_dir(key_file.parent)
        return True
    except OSError as exc:
        raise ConfigError(env_var, f"cannot write the key file {key_file}: {exc}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sealed_rows(sqlite_path: Path, sealed_in: tuple[str, str], env_var: str) -> int:
    """How many rows hold a sealed token; 0 for no database or no table yet."""
    table, column = sealed_in
    if not sqlite_path.exists() or sqlite_path.stat().st_size == 0:
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)) as db:
            found = db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone()
            if found is None:
                return 0
            # Both names are the service's own constants, never input.
            (count,) = db.execute(
                f"SELECT count(*) FROM {table} WHERE {column} IS NOT NULL "  # noqa: S608
                f"AND {column} != ''"
            ).fetchone()
            return int(count)
    except sqlite3.Error as exc:
        raise ConfigError(env_var, (
            f"the key file beside {sqlite_path} is empty, and the database cannot be read "
            f"to tell whether a token was sealed ({exc}): restore both from a backup"
        )) from None
