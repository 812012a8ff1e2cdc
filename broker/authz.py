"""Who may call what on the broker, by the identity in the caller's client certificate.

Applies only under mutual TLS (`BROKER_TLS_CLIENT_CA` set): then every call to
TokenBrokerService is checked against `BROKER_CALLER_POLICY`, e.g.

    notifier=GetToken,RefreshToken;operator=*

An identity is the certificate's subject common name or any of its subject
alternative names; a caller whose identities the policy does not name, or that
asks for a method its entries do not list, gets PERMISSION_DENIED with an
ErrorInfo. Health and reflection are not TokenBrokerService: any certificate the
client CA signed may call them. Without a client CA there is no caller identity
and no policy (the network is the boundary); setting a policy then is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from servicekit.config import ConfigError
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
    """The client certificate's common name and subject alternative names."""
    auth = context.auth_context() or {}
    names: list[str] = []
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        for value in auth.get(key, ()):
            text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            if text not in names:
                names.append(text)
    return names


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
                await context.abort_with_status(denied.to_status())
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            checked, handler.request_deserializer, handler.response_serializer
        )
