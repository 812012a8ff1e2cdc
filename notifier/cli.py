"""`zoho-notifier` (and `python -m notifier`): serve until SIGTERM/SIGINT.

`zoho-notifier ingress` serves only the HTTP ingress (the part exposed to the internet),
needing only NOTIFIER_DATABASE_URL: no broker, no key."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from notifier.app import NotifierApp
from notifier.config import NotifierConfig
from notifier.live import LiveEvents
from servicekit import tracing
from servicekit.config import ConfigError
from servicekit.logs import setup_logging
from servicekit.metrics import serve_metrics
from servicekit.origins import OriginPolicy
from servicekit.outbound import zoho_http_client
from servicekit.server import run_until_signal

log = logging.getLogger(__name__)


def _print_ingress(address: str) -> None:
    print(f"ingress listening on {address}", flush=True)


async def _serve(config: NotifierConfig) -> int:
    tracing.setup("zoho-notifier")
    app = NotifierApp(config)
    try:
        ingress = await app.live.start()
        app.health.start()
        if app.keeper is not None:
            await app.keeper.start()
        return await run_until_signal(app.server, on_started=lambda: _print_ingress(ingress))
    finally:
        await app.close()
        tracing.shutdown()


async def _serve_ingress(config: NotifierConfig) -> int:
    policy = OriginPolicy(list(config.extra_origins))
    http = zoho_http_client(policy, user_agent="zoho-connect-ingress/0.1", timeout=5.0)
    live = LiveEvents(config.events, http, policy, watch=False)
    try:
        _print_ingress(await live.start())
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await stopping.wait()
        log.info("ingress stopping")
        return 0
    finally:
        await live.stop()
        await http.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zoho-notifier")
    parser.add_argument(
        "command", nargs="?", choices=["ingress"],
        help="ingress: serve only Zoho's callbacks (needs only NOTIFIER_DATABASE_URL)",
    )
    args = parser.parse_args(argv)
    try:
        config = NotifierConfig.from_env()
    except ConfigError as problem:
        print(f"configuration error: {problem}", file=sys.stderr, flush=True)
        return 2
    setup_logging("notifier", fmt=config.log_format, level=config.log_level)
    if config.metrics_listen:
        serve_metrics(config.metrics_listen.host, config.metrics_listen.port)
    try:
        if args.command == "ingress":
            return asyncio.run(_serve_ingress(config))
        return asyncio.run(_serve(config))
    except ConfigError as problem:  # e.g. no NOTIFIER_ENCRYPTION_KEY for PostgreSQL
        print(f"configuration error: {problem}", file=sys.stderr, flush=True)
        return 2
