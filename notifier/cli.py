"""`zoho-notifier` (and `python -m notifier`): serve until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import sys

from notifier.app import NotifierApp
from notifier.config import NotifierConfig
from servicekit import tracing
from servicekit.config import ConfigError
from servicekit.logs import setup_logging
from servicekit.metrics import serve_metrics
from servicekit.server import run_until_signal


async def _serve(config: NotifierConfig) -> int:
    tracing.setup("zoho-notifier")
    app = NotifierApp(config)
    app.health.start()
    try:
        return await run_until_signal(app.server)
    finally:
        await app.close()
        tracing.shutdown()


def main() -> int:
    try:
        config = NotifierConfig.from_env()
    except ConfigError as problem:
        print(f"configuration error: {problem}", file=sys.stderr, flush=True)
        return 2
    setup_logging("notifier", fmt=config.log_format, level=config.log_level)
    serve_metrics(config.listen.host, config.metrics_port)
    return asyncio.run(_serve(config))
