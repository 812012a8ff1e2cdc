"""Who may call what on the broker, by the identity in the caller's client certificate.

Applies only under mutual TLS (`BROKER_TLS_CLIENT_CA` set): then every call to
TokenBrokerService is checked against `BROKER_CALLER_POLICY`, e.g.

    notifier=GetToken,RefreshToken;operator=*

An identity is one of the certificate's DNS subject alternative names, or its subject
common name when it has no SAN extension (certificate_identities; docs/security.md);
a caller whose identities the policy does not name, or that
asks for a method its entries do not list, gets PERMISSION_DENIED with an
ErrorInfo. Health and reflection are not TokenBrokerService: any certificate the
client CA signed may call them. Without a client CA there is no caller identity
and no policy (the network is the boundary); setting a policy then is an error.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from servicekit import identifiers
from servicekit.config import ConfigError
from servicekit.error_status import to_status
from servicekit.errors import PermissionDenied

log = logging.getLogger(__name__)

ENV_VAR = "BROKER_CALLER_POLICY"
DEFAULT_POLICY = "notifier=GetToken,RefreshToken;operator=*"
_ANY = "*"


@dataclass(frozen=True)
class CallerPolicy:
    grants: Mapping[str, frozenset[str]]

    @classmethod
    def parse(cls, spec: str, methods: Iterable[str]) -> CallerPolicy:
        known = set(methods)
        grants: dict[str, frozenset[str]] = {}
        for entry in (part.strip() for part in spec.split(";")):
            if not entry:
                continue
            identity, sep, listed = entry.partition("=")
            identity = identity.strip()
            names = {m.strip() for m in listed.split(",") if m.strip()}
            if not sep or not identity or not names:
                raise ConfigError(ENV_VAR, "expected IDENTITY=Method,Method;IDENTITY=*")
            unknown = sorted(names - known - {_ANY})
            if unknown:
                raise ConfigError(ENV_VAR, f"unknown method {unknown[0]!r} for {identity!r}; "
                                           f"known: {', '.join(sorted(known))}")
            if identity in grants:
                raise ConfigError(ENV_VAR, f"identity {identity!r} appears twice")
            grants[identity] = frozenset(known if _ANY in names else names)
        if not grants:
            raise ConfigError(ENV_VAR, "names no caller")
        return cls(grants)

    def allowed(self, identities: Iterable[str], method: str) -> bool:
        return any(method in self.grants.get(identity, ()) for identity in identities)


def peer_identities(context: grpc.aio.ServicerContext) -> list[str]:
    """The identities of the client certificate (see certificate_identities)."""
    auth = context.auth_context() or {}
    pems = auth.get("x509_pem_cert", ())
    return list(certificate_identities(bytes(pems[0]))) if pems else []


@functools.lru_cache(maxsize=256)
def certificate_identities(pem: bytes) -> tuple[str, ...]:
    """Which names of a certificate count as the caller's identity:

    - its DNS subject alternative names, when it has a SAN extension (URI, email, IP and
      other SAN types never count: a CA issuing an email certificate does not mean to
      name a service);
    - its subject common name only when it has no SAN extension at all (RFC 6125's
      rule for host names, applied to callers);
    - nothing for a certificate with an empty subject, or whose names are not plain
      ASCII host names (a wildcard names no one caller).
    """
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return ()
    if not list(cert.subject):
        return ()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        names = san.get_values_for_type(x509.DNSName)
    else:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if len(names) != 1:
            return ()  # several CNs: which one would be the caller is anyone's guess
    return tuple(dict.fromkeys(n for n in names if identifiers.is_dns_name(n)))


class CallerPolicyInterceptor(grpc.aio.ServerInterceptor):
    """Checks each call to `service` (full name) against the policy before it runs."""

    def __init__(self, service: str, policy: CallerPolicy) -> None:
        self.prefix = f"/{service}/"
        self.policy = policy

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or not details.method.startswith(self.prefix):
            return handler
        method = details.method[len(self.prefix):]
        if handler.unary_unary is None:
            # The broker serves unary methods only; anything else is refused, not unchecked.
            raise RuntimeError(f"caller policy cannot check the non-unary method {method}")
        inner = handler.unary_unary

        async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
            identities = peer_identities(context)
            if not self.policy.allowed(identities, method):
                log.warning("caller %s may not call %s", identities or "(no certificate)",
                            method)
                denied = PermissionDenied(
                    f"the caller {', '.join(identities) or '(no certificate)'} may not call "
                    f"{method}",
                    metadata={"method": method, "caller": ",".join(identities)[:200]},
                )
                await context.abort_with_status(to_status(denied))
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            checked, handler.request_deserializer, handler.response_serializer
        )
