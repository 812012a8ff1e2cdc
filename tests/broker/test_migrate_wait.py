"""`zoho-broker migrate` waits, bounded, for a database that does not accept connections yet
(compose starts it beside a PostgreSQL that is still initialising, listening on no TCP port).
The process is the real command; the late database is the real server behind a TCP relay
that starts listening only after a delay."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.integration.stack import free_port
from tests.plugins import broker_fixtures


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@contextmanager
def late_relay(port: int, target: tuple[str, int], delay: float) -> Iterator[None]:
    """From `delay` seconds on, 127.0.0.1:port relays every connection to `target`."""
    stop = threading.Event()

    def serve() -> None:
        if stop.wait(delay):
            return
        with socket.create_server(("127.0.0.1", port)) as listener:
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                upstream = socket.create_connection(target)
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def _migrate(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "broker", "migrate", *args], env=env,
                          capture_output=True, text=True, timeout=90, check=False)
    return done, time.monotonic() - started


@pytest.mark.postgres
@pytest.mark.skipif(broker_fixtures.test_database_kind() != "postgres",
                    reason="needs the PostgreSQL server; runs with TEST_DATABASE=postgres")
def test_migrate_waits_for_a_database_that_starts_listening_late(
    broker_env: dict[str, str], postgres_database: str
) -> None:
    port = free_port()
    url = postgres_database.replace("postgresql://", "postgresql+psycopg://", 1)
    late_url = url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{port}/")
    assert late_url != url
    with late_relay(port, ("127.0.0.1", 5432), delay=2.0):
        done, took = _migrate({**broker_env, "BROKER_DATABASE_URL": late_url})
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout
    assert took >= 2.0


@pytest.mark.slow
def test_migrate_gives_up_after_its_bound_naming_the_variable(
    broker_env: dict[str, str],
) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://zoho:hunter2-pw@127.0.0.1:{port}/zoho"
    done, took = _migrate({**broker_env, "BROKER_DATABASE_URL": url}, "--wait-seconds", "2")
    assert done.returncode == 2
    assert "BROKER_DATABASE_URL" in done.stderr
    assert "within 2 s" in done.stderr
    assert "hunter2-pw" not in done.stderr + done.stdout
    assert 2.0 <= took < 30
