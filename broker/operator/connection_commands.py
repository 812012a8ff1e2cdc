"""Operator commands of `zoho-broker`, run against a running broker over gRPC:

    zoho-broker connect --user ID [--scope S ...]   consent in a browser, then CreateConnection
    zoho-broker connections list | show ID | delete ID [--keep-grant]

Against a TLS broker: --tls-ca (and under mutual TLS --tls-cert, --tls-key), or
ZOHO_BROKER_TLS_CA/_CERT/_KEY; the broker's default policy names an `operator` identity.

Every typed error (the ErrorInfo reason) is said in a sentence that tells what to do.
Exit codes: 0 done, 1 the broker or Zoho said no, 2 a usage or configuration problem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import webbrowser
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import grpc
from google.protobuf import json_format

from broker.operator.consent_flow import (
    DEFAULT_ACCOUNTS_SERVER,
    DEFAULT_SCOPES,
    CallbackServer,
    ConsentError,
    authorization_url,
)
from broker.operator.explanations import explain
from servicekit.config import ConfigError, parse_listen
from servicekit.tls import ClientTls
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc

DEFAULT_BROKER = "127.0.0.1:50051"
DEFAULT_CALLBACK = "127.0.0.1:8765"
RPC_TIMEOUT_SECONDS = 30.0


def _when(
    connection: broker_pb2.Connection, name: Literal["token_expires_at", "last_refresh_time"]
) -> str:
    if not connection.HasField(name):
        return "-"
    return str(getattr(connection, name).ToDatetime().strftime("%Y-%m-%dT%H:%M:%SZ"))


def _describe(connection: broker_pb2.Connection) -> str:
    status = broker_pb2.ConnectionStatus.Name(connection.status).removeprefix("CONNECTION_STATUS_")
    lines = [
        ("user_id", connection.user_id),
        ("status", status),
        ("accounts_server", connection.accounts_server),
        ("api_domain", connection.api_domain),
        ("scopes", ", ".join(connection.scopes) or "-"),
        ("desk_org_id", connection.desk_org_id or "-"),
        ("token_expires_at", _when(connection, "token_expires_at")),
        ("last_refresh_time", _when(connection, "last_refresh_time")),
        ("last_error", connection.last_error or "-"),
    ]
    return "\n".join(f"{key:18s} {value}" for key, value in lines)


def _as_json(message: Any) -> str:
    return json.dumps(json_format.MessageToDict(message), indent=2, sort_keys=True)


# ---- commands ------------------------------------------------------------------------


async def connect(args: argparse.Namespace, stub: broker_pb2_grpc.TokenBrokerServiceStub) -> int:
    client_id = args.client_id or os.environ.get("ZOHO_CLIENT_ID", "")
    if not client_id:
        print("connect needs the OAuth client id: --client-id or ZOHO_CLIENT_ID", file=sys.stderr)
        return 2
    try:
        listen = parse_listen(args.listen, "--listen")
    except ConfigError as problem:
        print(problem, file=sys.stderr)
        return 2
    callback = CallbackServer(listen.host, listen.port, redirect_uri=args.redirect_uri)
    redirect_uri = await callback.start()
    try:
        url = authorization_url(
            args.accounts_server,
            client_id=client_id,
            scopes=args.scope or list(DEFAULT_SCOPES),
            redirect_uri=redirect_uri,
            state=callback.state,
        )
        print(f"Open this link in a browser, sign in to Zoho as the user and accept:\n{url}",
              flush=True)
        print(f"Waiting up to {args.timeout:.0f} s for Zoho's redirect to {redirect_uri}",
              file=sys.stderr, flush=True)
        if args.open:
            webbrowser.open(url)
        try:
            redirect = await callback.wait(args.timeout)
        except TimeoutError:
            print("No redirect from Zoho arrived in time; nothing was connected.", file=sys.stderr)
            return 1
        except ConsentError as problem:
            print(f"{problem}; nothing was connected.", file=sys.stderr)
            return 1
        try:
            connection = await stub.CreateConnection(
                broker_pb2.CreateConnectionRequest(
                    user_id=args.user,
                    accounts_server=redirect.accounts_server,
                    authorization_code=redirect.code,
                    redirect_uri=redirect_uri,
                    scopes=args.scope or list(DEFAULT_SCOPES),
                    desk_org_id=args.desk_org_id,
                ),
                timeout=RPC_TIMEOUT_SECONDS,
            )
        except grpc.aio.AioRpcError as err:
            sentence = explain(err, broker=args.broker, user_id=args.user)
            callback.finish(False, sentence)
            print(sentence, file=sys.stderr)
            return 1
        callback.finish(True, f"Zoho is connected for {args.user}. You can close this page.")
        print(f"connected {args.user} (data centre {redirect.location or '?'})")
        print(_describe(connection), flush=True)
        return 0
    finally:
        await callback.close()


async def list_connections(
    args: argparse.Namespace, stub: broker_pb2_grpc.TokenBrokerServiceStub
) -> int:
    connections: list[broker_pb2.Connection] = []
    page_token = ""
    while True:
        reply = await stub.ListConnections(
            broker_pb2.ListConnectionsRequest(page_size=args.page_size, page_token=page_token),
            timeout=RPC_TIMEOUT_SECONDS,
        )
        connections.extend(reply.connections)
        page_token = reply.next_page_token
        if not page_token:
            break
    if args.json:
        print(json.dumps([json_format.MessageToDict(c) for c in connections], indent=2))
        return 0
    print(f"{'USER':24s} {'STATUS':16s} {'TOKEN EXPIRES':20s} {'API DOMAIN':32s} LAST ERROR")
    for c in connections:
        status = broker_pb2.ConnectionStatus.Name(c.status).removeprefix("CONNECTION_STATUS_")
        print(f"{c.user_id:24s} {status:16s} {_when(c, 'token_expires_at'):20s} "
              f"{c.api_domain:32s} {c.last_error or '-'}")
    print(f"{len(connections)} connection(s)")
    return 0


async def show(args: argparse.Namespace, stub: broker_pb2_grpc.TokenBrokerServiceStub) -> int:
    connection = await stub.GetConnection(
        broker_pb2.GetConnectionRequest(user_id=args.user), timeout=RPC_TIMEOUT_SECONDS
    )
    print(_as_json(connection) if args.json else _describe(connection))
    return 0


async def delete(args: argparse.Namespace, stub: broker_pb2_grpc.TokenBrokerServiceStub) -> int:
    revoke = not args.keep_grant
    reply = await stub.DeleteConnection(
        broker_pb2.DeleteConnectionRequest(user_id=args.user, revoke=revoke),
        timeout=RPC_TIMEOUT_SECONDS,
    )
    if not revoke:
        print(f"deleted the connection of {args.user}; its refresh token was NOT revoked at Zoho")
    elif reply.revoked:
        print(f"deleted the connection of {args.user}; Zoho revoked its refresh token")
    else:
        print(f"deleted the connection of {args.user}; Zoho did not confirm the revocation: "
              "remove the app in the user's Zoho account settings to be sure")
    return 0


Command = Callable[[argparse.Namespace, broker_pb2_grpc.TokenBrokerServiceStub], Awaitable[int]]


def channel_tls(args: argparse.Namespace) -> ClientTls | None:
    """TLS to the broker from --tls-ca/--tls-cert/--tls-key, each defaulting to its
    ZOHO_BROKER_TLS_* variable (as zoho-health takes them). Raises ConfigError."""
    env = {name: value for name, value in (
        ("ZOHO_BROKER_TLS_CA", args.tls_ca), ("ZOHO_BROKER_TLS_CERT", args.tls_cert),
        ("ZOHO_BROKER_TLS_KEY", args.tls_key)) if value}
    return ClientTls.from_env("ZOHO_BROKER", env)


async def _run(command: Command, args: argparse.Namespace) -> int:
    try:
        tls = channel_tls(args)
    except ConfigError as problem:
        print(f"TLS to the broker: {problem}", file=sys.stderr)
        return 2
    channel = grpc.aio.secure_channel(args.broker, tls.credentials()) if tls \
        else grpc.aio.insecure_channel(args.broker)
    async with channel:
        stub = broker_pb2_grpc.TokenBrokerServiceStub(channel)
        try:
            return await command(args, stub)
        except grpc.aio.AioRpcError as err:
            print(explain(err, broker=args.broker, user_id=getattr(args, "user", "")),
                  file=sys.stderr)
            return 1


def run(args: argparse.Namespace) -> int:
    """Runs the operator command chosen by `add_commands`' parsers."""
    command: Command = args.operator_command
    return asyncio.run(_run(command, args))


def add_commands(commands: Any) -> None:
    """Adds `connect` and `connections` to zoho-broker's subcommands."""
    broker_help = f"the broker's gRPC address (default {DEFAULT_BROKER}, or ZOHO_BROKER_TARGET)"
    default_broker = os.environ.get("ZOHO_BROKER_TARGET", DEFAULT_BROKER)

    connect_parser = commands.add_parser(
        "connect", help="connect a user: Zoho consent in a browser, then CreateConnection"
    )
    connect_parser.add_argument("--user", required=True, help="the user_id to store it under")
    connect_parser.add_argument("--broker", default=default_broker, help=broker_help)
    connect_parser.add_argument(
        "--accounts-server", default=DEFAULT_ACCOUNTS_SERVER,
        help=f"where the consent starts (default {DEFAULT_ACCOUNTS_SERVER}; Zoho sends the "
        "user's own data centre back with the redirect)",
    )
    connect_parser.add_argument("--client-id", help="the OAuth client (default ZOHO_CLIENT_ID)")
    connect_parser.add_argument(
        "--scope", action="append",
        help=f"a scope to ask for (repeat; default {', '.join(DEFAULT_SCOPES)})",
    )
    connect_parser.add_argument("--desk-org-id", default="", help="the Desk org to use")
    connect_parser.add_argument(
        "--listen", default=DEFAULT_CALLBACK,
        help=f"HOST:PORT of the local callback (default {DEFAULT_CALLBACK})",
    )
    connect_parser.add_argument(
        "--redirect-uri",
        help="the redirect URI registered for the client, if not http://LISTEN/callback",
    )
    connect_parser.add_argument("--timeout", type=float, default=300.0,
                                help="seconds to wait for the redirect (default 300)")
    connect_parser.add_argument("--open", action="store_true", help="open the link in a browser")
    connect_parser.set_defaults(operator_command=connect)

    connections = commands.add_parser("connections", help="list, show or delete connections")
    actions = connections.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="every connection (never a token)")
    listing.add_argument("--page-size", type=int, default=100)
    listing.set_defaults(operator_command=list_connections)
    showing = actions.add_parser("show", help="one connection")
    showing.add_argument("user")
    showing.set_defaults(operator_command=show)
    deleting = actions.add_parser("delete", help="delete a connection, revoking it at Zoho")
    deleting.add_argument("user")
    deleting.add_argument("--keep-grant", action="store_true",
                          help="do not revoke the refresh token at Zoho")
    deleting.set_defaults(operator_command=delete)
    for sub in (listing, showing, deleting):
        sub.add_argument("--broker", default=default_broker, help=broker_help)
    for sub in (connect_parser, listing, showing, deleting):
        _tls_arguments(sub)
    for sub in (listing, showing):
        sub.add_argument("--json", action="store_true", help="print JSON")


def _tls_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, variable, meaning in (
        ("--tls-ca", "ZOHO_BROKER_TLS_CA", "CA of the broker's certificate (TLS)"),
        ("--tls-cert", "ZOHO_BROKER_TLS_CERT", "this operator's certificate (mutual TLS)"),
        ("--tls-key", "ZOHO_BROKER_TLS_KEY", "its private key (mutual TLS)"),
    ):
        parser.add_argument(flag, metavar="PEM", default=os.environ.get(variable, ""),
                            help=f"{meaning}; default {variable}")
