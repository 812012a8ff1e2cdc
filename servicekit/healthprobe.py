"""`zoho-health ADDRESS [SERVICE]`: exit 0 if the server reports SERVING.

Compose healthchecks use it, so a container is healthy only when the gRPC
service itself says so, not merely when its port is open.
`zoho-health --http URL` does the same for an HTTP service (the sandbox's
`/_sandbox/health`): exit 0 on a 2xx answer whose JSON has `"ok": true`.
Against a TLS server: `--tls-ca CA.pem`, and under mutual TLS also `--tls-cert`
and `--tls-key` (any certificate the server's client CA signed).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def open_channel(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.Channel:
    """The one place a channel is made: tests hand in grpc_testing's channel here."""
    return grpc.secure_channel(address, credentials) if credentials \
        else grpc.insecure_channel(address)


def check(address: str, service: str = "", timeout: float = 3.0,
          credentials: grpc.ChannelCredentials | None = None) -> str:
    with open_channel(address, credentials) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def check_http(url: str, timeout: float = 3.0) -> bool:
    """True when `url` answers 2xx with a JSON object whose `ok` is true."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"expected an http(s) URL, got {url!r}")
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - scheme checked
        body = json.loads(response.read() or b"{}")
    return isinstance(body, dict) and body.get("ok") is True


def _main_http(url: str, timeout: float) -> int:
    try:
        healthy = check_http(url, timeout)
    except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    print(f"{url}: {'SERVING' if healthy else 'NOT_SERVING'}")
    return 0 if healthy else 1


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as handle:
        return handle.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zoho-health", description=__doc__.splitlines()[0])
    parser.add_argument("address", nargs="?", help="HOST:PORT of a broker or notifier")
    parser.add_argument("service", nargs="?", default="", help="service name ('' = server)")
    parser.add_argument("--http", metavar="URL", help="probe an HTTP health URL instead")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--tls-ca", metavar="PEM", help="CA of the server's certificate (TLS)")
    parser.add_argument("--tls-cert", metavar="PEM", help="client certificate (mutual TLS)")
    parser.add_argument("--tls-key", metavar="PEM", help="client key (mutual TLS)")
    args = parser.parse_args(argv)
    if args.http:
        if args.address:
            parser.error("give either ADDRESS or --http URL, not both")
        return _main_http(args.http, args.timeout)
    if not args.address:
        parser.error("ADDRESS (or --http URL) is required")
    if (args.tls_cert or args.tls_key) and not (args.tls_ca and args.tls_cert and args.tls_key):
        parser.error("--tls-cert and --tls-key go together, with --tls-ca")
    try:
        credentials = None
        if args.tls_ca:
            credentials = grpc.ssl_channel_credentials(
                _read(args.tls_ca), _read(args.tls_key), _read(args.tls_cert))
        status = check(args.address, args.service, args.timeout, credentials)
    except OSError as exc:
        print(f"cannot read a TLS file: {exc}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"{args.address}: {exc.code().name}", file=sys.stderr)
        return 1
    print(f"{args.address} {args.service or '(server)'}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
