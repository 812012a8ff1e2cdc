"""TLS for the gRPC servers and for the notifier's channel to the broker.

Configuration is three files per side, named by environment variables with the
service's prefix:

- server: `{PREFIX}_TLS_CERT` and `{PREFIX}_TLS_KEY` (PEM) turn TLS on;
  `{PREFIX}_TLS_CLIENT_CA` also makes it mutual: every client must present a
  certificate that CA signed, or the handshake fails (health and reflection too).
- client: `{PREFIX}_TLS_CA` (the CA that signed the server) turns TLS on;
  `{PREFIX}_TLS_CERT` and `{PREFIX}_TLS_KEY` add the client's own certificate.

Files are read once at start; a missing or unreadable file stops the process with
the variable named.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from servicekit.config import ConfigError, Env


def _read(env: Env, name: str) -> bytes | None:
    path = env.text(name)
    if not path:
        return None
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(name, f"cannot read {path}: {exc.strerror}") from None
    if b"-----BEGIN " not in data:
        raise ConfigError(name, f"{path} is not a PEM file")
    return data


def _pair(env: Env, cert_var: str, key_var: str) -> tuple[bytes, bytes] | None:
    cert, key = _read(env, cert_var), _read(env, key_var)
    if (cert is None) != (key is None):
        missing = key_var if key is None else cert_var
        raise ConfigError(missing, f"required together with {cert_var if key is None else key_var}")
    return None if cert is None or key is None else (cert, key)


@dataclass(frozen=True)
class ServerTls:
    cert_chain: bytes = field(repr=False)
    private_key: bytes = field(repr=False)
    client_ca: bytes | None = field(default=None, repr=False)

    @property
    def mutual(self) -> bool:
        return self.client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.cert_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )

    @classmethod
    def from_env(cls, prefix: str, environ: Mapping[str, str] | Env | None = None
                 ) -> ServerTls | None:
        env = environ if isinstance(environ, Env) else Env(environ)
        pair = _pair(env, f"{prefix}_TLS_CERT", f"{prefix}_TLS_KEY")
        client_ca = _read(env, f"{prefix}_TLS_CLIENT_CA")
        if pair is None:
            if client_ca is not None:
                raise ConfigError(f"{prefix}_TLS_CLIENT_CA",
                                  f"needs {prefix}_TLS_CERT and {prefix}_TLS_KEY (TLS) first")
            return None
        return cls(pair[0], pair[1], client_ca)


@dataclass(frozen=True)
class ClientTls:
    server_ca: bytes = field(repr=False)
    cert_chain: bytes | None = field(default=None, repr=False)
    private_key: bytes | None = field(default=None, repr=False)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.server_ca,
            private_key=self.private_key,
            certificate_chain=self.cert_chain,
        )

    @classmethod
    def from_env(cls, prefix: str, environ: Mapping[str, str] | Env | None = None
                 ) -> ClientTls | None:
        env = environ if isinstance(environ, Env) else Env(environ)
        server_ca = _read(env, f"{prefix}_TLS_CA")
        pair = _pair(env, f"{prefix}_TLS_CERT", f"{prefix}_TLS_KEY")
        if server_ca is None:
            if pair is not None:
                raise ConfigError(f"{prefix}_TLS_CA",
                                  f"required with {prefix}_TLS_CERT: the CA that signed the server")
            return None
        return cls(server_ca, *(pair or (None, None)))


def secure_or_insecure_channel(
    target: str, tls: ClientTls | None, options: Sequence[tuple[str, Any]] | None = None
) -> grpc.aio.Channel:
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    return grpc.aio.secure_channel(target, tls.credentials(), options=options)
