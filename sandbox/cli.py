"""`zoho-sandbox` / `python -m sandbox`: serve the sandbox until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

from sandbox import demo
from sandbox.app import run_sandbox
from sandbox.control import Network, parse_networks
from sandbox.deliver_to import LOOPBACK, DeliverTo
from sandbox.demo import DemoSizes
from sandbox.demo_records import DEFAULT_DEMO_RECORDS

DEFAULT_LISTEN = "127.0.0.1:8780"


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "ts": round(record.created, 3),
                "level": record.levelname,
                "logger": record.name,
                "msg": record.getMessage(),
            }
        )


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT`, `[v6]:PORT`; raises ValueError naming the problem."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port out of range in {value!r}")
    return host.strip("[]"), port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoho-sandbox", description=__doc__)
    parser.add_argument(
        "--listen",
        help=f"HOST:PORT to bind (overrides SANDBOX_LISTEN; default {DEFAULT_LISTEN}; port 0 "
        "picks a free port)",
    )
    parser.add_argument("--no-demo", action="store_true", help="start without the demo tenant")
    parser.add_argument("--demo-crm-items", type=int, default=demo.DEFAULT_CRM_ITEMS)
    parser.add_argument("--demo-desk-webhooks", type=int, default=demo.DEFAULT_DESK_WEBHOOKS)
    parser.add_argument(
        "--demo-records",
        type=int,
        default=DEFAULT_DEMO_RECORDS,
        help="demo records per CRM module (Leads, Contacts, Accounts, Deals) and of Desk "
        "tickets and contacts",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
    )
    parser.add_argument(
        "--control-from",
        help="comma-separated networks (CIDR) whose peers may use the /_sandbox/ control API "
        "besides loopback, e.g. a test runner in another container (overrides "
        "SANDBOX_CONTROL_FROM; default none)",
    )
    parser.add_argument(
        "--deliver-to",
        help="comma-separated networks (CIDR) and host names that callbacks and Desk's URL "
        "check may be sent to (overrides SANDBOX_DELIVER_TO; default loopback: "
        f"{LOOPBACK})",
    )
    parser.add_argument(
        "--trickle",
        type=float,
        default=0.0,
        metavar="RATE",
        help="for the demo: make RATE made-up record changes a second and deliver them "
        "(default 0: none)",
    )
    return parser


async def serve(
    host: str,
    port: int,
    *,
    with_demo: bool,
    sizes: DemoSizes,
    control_networks: tuple[Network, ...] = (),
    deliver_to: str = LOOPBACK,
    trickle_per_second: float = 0.0,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with run_sandbox(
        host,
        port,
        with_demo=with_demo,
        sizes=sizes,
        control_networks=control_networks,
        deliver_to=deliver_to,
        trickle_per_second=trickle_per_second,
    ) as origin:
        bound_port = origin.rsplit(":", 1)[1]
        print(f"listening on {host}:{bound_port}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    listen = args.listen or os.environ.get("SANDBOX_LISTEN") or DEFAULT_LISTEN
    source = "--listen" if args.listen else "SANDBOX_LISTEN"
    try:
        host, port = parse_listen(listen)
    except ValueError as exc:
        print(f"zoho-sandbox: bad {source}: {exc}", file=sys.stderr)
        return 2
    control_from = args.control_from
    if control_from is None:
        control_from = os.environ.get("SANDBOX_CONTROL_FROM", "")
    try:
        control_networks = parse_networks(control_from)
    except ValueError as exc:
        print(f"zoho-sandbox: bad --control-from / SANDBOX_CONTROL_FROM: {exc}", file=sys.stderr)
        return 2
    deliver_to = args.deliver_to or os.environ.get("SANDBOX_DELIVER_TO") or LOOPBACK
    try:
        DeliverTo(deliver_to)
    except ValueError as exc:
        print(f"zoho-sandbox: bad --deliver-to / SANDBOX_DELIVER_TO: {exc}", file=sys.stderr)
        return 2
    if args.trickle < 0:
        print("zoho-sandbox: --trickle must be >= 0", file=sys.stderr)
        return 2
    if min(args.demo_crm_items, args.demo_desk_webhooks, args.demo_records) < 0:
        print("zoho-sandbox: demo sizes must be >= 0", file=sys.stderr)
        return 2
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=args.log_level, handlers=[handler])
    sizes = DemoSizes(args.demo_crm_items, args.demo_desk_webhooks, args.demo_records)
    try:
        asyncio.run(
            serve(
                host,
                port,
                with_demo=not args.no_demo,
                sizes=sizes,
                control_networks=control_networks,
                deliver_to=deliver_to,
                trickle_per_second=args.trickle,
            )
        )
    except OSError as exc:
        print(f"zoho-sandbox: cannot listen on {listen}: {exc}", file=sys.stderr)
        return 1
    return 0
