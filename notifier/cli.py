"""`zoho-notifier` (and `python -m notifier`): serve until SIGTERM/SIGINT.

`zoho-notifier ingress` serves only the HTTP ingress (the part exposed to the internet),
needing only NOTIFIER_DATABASE_URL: no broker, no key."""

from __future__ import annotations

import argparse
import asyncio
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
from servicekit.runner import run_until_signal


async def _serve(config: NotifierConfig) -> int:
    tracing.setup("zoho-notifier")
    app = NotifierApp(config)
    try:
        return await run_until_signal(
            app, on_started=lambda: print(f"ingress listening on {app.live.ingress_address}",
                                          flush=True),
        )
    finally:
        tracing.shutdown()


async def _serve_ingress(config: NotifierConfig) -> int:
    return await run_until_signal(IngressOnly(config), first_line="ingress listening on")


class IngressOnly:
    """The ingress alone, run like a whole service (the part exposed to the internet)."""

    def __init__(self, config: NotifierConfig) -> None:
        policy = OriginPolicy(list(config.extra_origins))
        self.http = zoho_http_client(policy, user_agent="zoho-connect-ingress/0.1", timeout=5.0)
        self.live = LiveEvents(config.events, self.http, policy, watch=False)

    async def start(self, *, migrate: bool = True) -> str:
        return await self.live.start(migrate=migrate)

    async def stop(self, grace: float | None = None) -> None:
        await self.live.stop()
        await self.http.aclose()


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
    try:
        if config.metrics_listen:
            serve_metrics(config.metrics_listen)
        if args.command == "ingress":
            return asyncio.run(_serve_ingress(config))
        return asyncio.run(_serve(config))
    except ConfigError as problem:  # no NOTIFIER_ENCRYPTION_KEY for PostgreSQL, a port in use
        print(f"configuration error: {problem}", file=sys.stderr, flush=True)
        return 2
