"""`zoho-broker`: serve (the default), migrate, reencrypt, new-key; and the operator's
connect / connections commands (connection_commands.py), which talk to a running broker."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from broker.app import Broker, key_ring
from broker.config import BrokerConfig
from broker.operator import connection_commands
from broker.storage import key_maintenance
from broker.storage.connection_store import ConnectionStore
from broker.storage.tables import DATABASE
from servicekit import tracing
from servicekit.config import ConfigError
from servicekit.database import DatabaseUnusable
from servicekit.errors import DecryptError
from servicekit.logs import setup_logging
from servicekit.metrics import serve_metrics
from servicekit.runner import run_until_signal
from servicekit.sealing import new_key_spec

log = logging.getLogger("broker")


async def _serve(config: BrokerConfig, migrate: bool) -> int:
    tracing.setup("zoho-broker")
    try:
        broker = Broker(config)
        if config.metrics_listen:
            serve_metrics(config.metrics_listen)
        return await run_until_signal(broker, migrate=migrate)
    finally:
        tracing.shutdown()


async def _reencrypt(config: BrokerConfig) -> int:
    store = ConnectionStore(DATABASE.make_async_engine(config.database_url), key_ring(config))
    try:
        seen, rewritten = await key_maintenance.reencrypt_all(store)
    except DecryptError as exc:
        print(f"re-encryption stopped, the row it could not read is unchanged: {exc}",
              file=sys.stderr)
        return 1
    finally:
        await store.engine.dispose()
    print(f"re-encrypted {rewritten} of {seen} connections under key {store.keys.primary_id!r}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="zoho-broker",
        description="Zoho token broker: owns OAuth connections, hands out fresh access tokens.",
    )
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the gRPC server (the default)")
    serve.add_argument("--no-migrate", action="store_true", help="do not migrate at start")
    migrate = commands.add_parser(
        "migrate", help="bring the database schema up to date, then exit"
    )
    migrate.add_argument(
        "--wait-seconds", type=float, default=60.0,
        help="how long to wait for the database to accept connections first (default 60)",
    )
    commands.add_parser(
        "reencrypt", help="re-encrypt every stored token under the first BROKER_ENCRYPTION_KEY"
    )
    new_key = commands.add_parser("new-key", help="print a new KEY_ID:KEY for the key ring")
    new_key.add_argument("key_id", nargs="?", default="k1")
    connection_commands.add_commands(commands)
    parser.add_argument("--no-migrate", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if getattr(args, "operator_command", None) is not None:
        return connection_commands.run(args)
    if args.command == "new-key":
        print(new_key_spec(args.key_id))
        return 0
    try:
        config = BrokerConfig.from_env()
        setup_logging("broker", fmt=config.log_format, level=config.log_level)
        if args.command == "migrate":
            DATABASE.wait_for(config.database_url, timeout=args.wait_seconds)
            DATABASE.migrate(config.database_url)
            print("database schema is up to date")
            return 0
        if args.command == "reencrypt":
            return asyncio.run(_reencrypt(config))
        return asyncio.run(_serve(config, migrate=not args.no_migrate))
    except DatabaseUnusable as problem:
        print(f"cannot start: {problem}", file=sys.stderr, flush=True)
        return 2
    except ConfigError as problem:
        print(f"configuration error: {problem}", file=sys.stderr, flush=True)
        return 2
