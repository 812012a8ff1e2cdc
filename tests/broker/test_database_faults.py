"""A database file and key file the broker cannot use (issue 11, item 8).

Injected: a garbage, a truncated and a read-only SQLite file; an index corrupted after
the start checks passed; a 0-byte key file (as a crash during the first start left
it), a key file others may read, a key file with garbage. Asserted: exit code 2 and one
line naming the problem (no traceback); UNAVAILABLE with BACKEND_UNAVAILABLE per call,
the cause logged once, health NOT_SERVING; the key file's mode and content.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from broker.storage.sealed_columns import KeyRing, load_key_ring
from broker.storage.tables import DATABASE, PROBE_QUERY
from servicekit.config import ConfigError
from servicekit.key_file import key_file_for
from servicekit.sealing import new_key_spec
from tests.plugins.broker_fixtures import MakeBroker
from tests.plugins.processes import REPO_ROOT
from tests.rpc_errors import seen
from zoho.broker.v1 import broker_pb2


def start_broker(env: dict[str, str], url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker"], env={**os.environ, **env, "BROKER_DATABASE_URL": url},
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)


def migrated(path: Path) -> Path:
    DATABASE.migrate(f"sqlite:///{path}")
    # One file holds everything: no WAL beside it for a test to forget.
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["garbage", "truncated", "read-only"])
def test_an_unusable_database_file_stops_the_broker_with_one_line(
    broker_env: dict[str, str], tmp_path: Path, fault: str
) -> None:
    path = tmp_path / "broker.db"
    if fault == "garbage":
        path.write_bytes(os.urandom(8192))
        url, words = f"sqlite:///{path}", "is not a SQLite database"
    elif fault == "truncated":
        whole = migrated(tmp_path / "whole.db").read_bytes()
        path.write_bytes(whole[: len(whole) // 3])
        url, words = f"sqlite:///{path}", "is damaged"
    else:
        migrated(path)
        # Running as root, file modes do not stop writes: SQLite's read-only mode does.
        url, words = f"sqlite:///file:{path}?mode=ro&uri=true", "is read-only"
    done = start_broker(broker_env, url)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "BROKER_DATABASE_URL" in lines[0] and words in lines[0], lines[0]


def corrupt_index(path: Path, index: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                               (index,)).fetchone()
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    with open(path, "r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\xff" * page_size)


@pytest.mark.slow
async def test_a_corrupted_index_is_backend_unavailable_logged_once_and_not_serving(
    make_broker: MakeBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = migrated(tmp_path / "broker.db")
    url = f"sqlite:///{path}"
    first = await make_broker(BROKER_DATABASE_URL=url)
    for user in ("alice", "bob", "carol"):
        refresh = await first.sandbox.add_refresh_token(user=user)
        await first.connect(user_id=user, refresh_token=refresh)
    await first.broker.stop(0)
    corrupt_index(path, "sqlite_autoindex_zoho_connections_1")
    # The start checks pass: the damage is met by calls only.
    DATABASE.check_usable(url, PROBE_QUERY)

    caplog.set_level(logging.ERROR, logger="broker.storage.connection_store")
    handle = await make_broker(BROKER_DATABASE_URL=url)
    for user in ("alice", "bob", "nobody"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await handle.stub.GetConnection(broker_pb2.GetConnectionRequest(user_id=user),
                                            timeout=10)
        error = seen(caught.value)
        assert error.code == grpc.StatusCode.UNAVAILABLE, error
        assert error.reason == "BACKEND_UNAVAILABLE"
    logged = [r.getMessage() for r in caplog.records if r.name == "broker.storage.connection_store"]
    assert len(logged) == 1, logged
    assert "damaged" in logged[0] and "malformed" in logged[0]
    health = health_pb2_grpc.HealthStub(handle.channel)
    for service in ("zoho.broker.v1.TokenBrokerService", ""):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING


# ---- the key file ------------------------------------------------------------------------


def ring(database: Path) -> KeyRing:
    return load_key_ring("", sqlite_path=database)


def test_an_empty_key_file_with_nothing_sealed_is_replaced(tmp_path: Path) -> None:
    database = migrated(tmp_path / "broker.db")
    key_file = key_file_for(database)
    key_file.touch(mode=0o600)  # what a crash during the first start used to leave
    keys = ring(database)
    assert key_file.read_text().strip().startswith("local1:")
    assert keys.decrypt(keys.encrypt("x", context="c"), context="c") == "x"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_empty_key_file_with_sealed_tokens_is_refused_naming_both(tmp_path: Path) -> None:
    database = migrated(tmp_path / "broker.db")
    with sqlite3.connect(database) as conn:
        conn.execute(
            "INSERT INTO zoho_connections (user_id, refresh_token, refresh_token_hash, "
            "api_domain, accounts_server, scopes, status, version, refresh_failures, "
            "created_at, updated_at) VALUES ('u', 'v1:local1:abc', 'h', 'a', 'b', '', "
            "'active', 1, 0, '2026-01-01', '2026-01-01')")
    key_file = key_file_for(database)
    key_file.touch(mode=0o600)
    with pytest.raises(ConfigError) as caught:
        ring(database)
    assert caught.value.variable == "BROKER_ENCRYPTION_KEY"
    assert "is empty" in str(caught.value) and "1 token(s)" in str(caught.value)
    assert key_file.read_bytes() == b""  # nothing overwritten


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_key_file_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    database = tmp_path / "broker.db"
    key_file = key_file_for(database)
    key_file.write_text(new_key_spec("local1") + "\n")
    key_file.chmod(mode)
    with pytest.raises(ConfigError) as caught:
        ring(database)
    assert "chmod 600" in str(caught.value) and f"{mode:04o}" in str(caught.value)


def test_a_garbled_key_file_is_named(tmp_path: Path) -> None:
    database = tmp_path / "broker.db"
    key_file = key_file_for(database)
    key_file.write_text("not a key\n")
    key_file.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        ring(database)
    assert str(key_file) in str(caught.value)


@pytest.mark.slow
def test_the_process_names_an_unsafe_key_file_and_exits_2(
    broker_env: dict[str, str], tmp_path: Path
) -> None:
    database = migrated(tmp_path / "broker.db")
    key_file = key_file_for(database)
    key_file.write_text(new_key_spec("local1") + "\n")
    key_file.chmod(0o644)
    env = {k: v for k, v in broker_env.items() if k != "BROKER_ENCRYPTION_KEY"}
    env["BROKER_ENCRYPTION_KEY"] = ""
    done = start_broker(env, f"sqlite:///{database}")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "may be read by other users" in done.stderr
