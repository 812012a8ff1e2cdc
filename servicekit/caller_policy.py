"""Who may call what, by the identity in the caller's client certificate: the one
machinery both servers use under mutual TLS (the broker's BROKER_CALLER_POLICY, the
notifier's NOTIFIER_CALLER_POLICY; docs/security.md).

A policy is `IDENTITY=Method,Method;IDENTITY=*`. An identity is one of the
certificate's DNS subject alternative names, or its subject common name when it has no
SAN extension (`certificate_identities`). A caller whose identities the policy does not
name, or that asks for a method its entries do not list, gets PERMISSION_DENIED with an
ErrorInfo before the method runs. Health and reflection are not the guarded service:
any certificate the client CA signed may call them.

A service may define grants that are not methods (the notifier's `AllUsers`: may read
every user's events); a handler asks `granted(name)` for them. A service may also
allow the identity `*`: any certificate its client CA signed."""

from __future__ import annotations

import contextvars
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

ANY = "*"


@dataclass(frozen=True)
class CallerPolicy:
    grants: Mapping[str, frozenset[str]]

    @classmethod
    def parse(
        cls,
        spec: str,
        methods: Iterable[str],
        *,
        env_var: str,
        extra_grants: Iterable[str] = (),
        any_caller: bool = False,
    ) -> CallerPolicy:
        """`extra_grants`: names a policy may list besides methods (never implied by
        `*`: each is named); `any_caller`: the identity `*` (any certificate) is allowed."""
        known = set(methods)
        extra = set(extra_grants)
        grants: dict[str, frozenset[str]] = {}
        for entry in (part.strip() for part in spec.split(";")):
            if not entry:
                continue
            identity, sep, listed = entry.partition("=")
            identity = identity.strip()
            names = {m.strip() for m in listed.split(",") if m.strip()}
            if not sep or not identity or not names:
                raise ConfigError(env_var, "expected IDENTITY=Method,Method;IDENTITY=*")
            if identity == ANY and not any_caller:
                raise ConfigError(env_var, "the identity * is not allowed here")
            unknown = sorted(names - known - extra - {ANY})
            if unknown:
                raise ConfigError(env_var, f"unknown method {unknown[0]!r} for {identity!r}; "
                                           f"known: {', '.join(sorted(known | extra))}")
            if identity in grants:
                raise ConfigError(env_var, f"identity {identity!r} appears twice")
            granted = (known if ANY in names else set()) | (names - {ANY})
            grants[identity] = frozenset(granted)
        if not grants:
            raise ConfigError(env_var, "names no caller")
        return cls(grants)

    def allowed(self, identities: Iterable[str], method: str) -> bool:
        return any(method in self.grants.get(identity, ())
                   for identity in (*identities, ANY))


# The policy and the caller's identities, for the call being handled (set by the
# interceptor before the handler runs): what `granted` looks at.
_caller: contextvars.ContextVar[tuple[CallerPolicy, tuple[str, ...]] | None] = (
    contextvars.ContextVar("caller_policy", default=None)
)


def granted(name: str) -> bool:
    """Whether the caller of the call being handled holds `name` (a method or an extra
    grant). True when no policy applies (no mutual TLS: the network is the boundary)."""
    current = _caller.get()
    if current is None:
        return True
    policy, identities = current
    return policy.allowed(identities, name)


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
    """Checks each call to `service` (full name) against the policy before it runs,
    whatever its kind (unary or streaming, either way)."""

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
        serializers = (handler.request_deserializer, handler.response_serializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method), *serializers)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary, method), *serializers)
        inner = handler.unary_stream or handler.stream_stream
        wrap = (grpc.unary_stream_rpc_method_handler if handler.unary_stream is not None
                else grpc.stream_stream_rpc_method_handler)
        return wrap(self._stream(inner, method), *serializers)

    async def _admit(self, context: grpc.aio.ServicerContext, method: str) -> None:
        identities = tuple(peer_identities(context))
        if not self.policy.allowed(identities, method):
            log.warning("caller %s may not call %s", list(identities) or "(no certificate)",
                        method)
            denied = PermissionDenied(
                f"the caller {', '.join(identities) or '(no certificate)'} may not call "
                f"{method}",
                metadata={"method": method, "caller": ",".join(identities)[:200]},
            )
            await context.abort_with_status(to_status(denied))
        _caller.set((self.policy, identities))

    def _unary(self, inner: Callable[..., Any], method: str) -> Callable[..., Any]:
        async def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self._admit(context, method)
            return await inner(request, context)

        return checked

    def _stream(self, inner: Callable[..., Any], method: str) -> Callable[..., Any]:
        async def checked(request: Any, context: grpc.aio.ServicerContext) -> None:
            await self._admit(context, method)
            result = inner(request, context)
            if hasattr(result, "__aiter__"):
                # A handler that yields: its items are written here, one by one.
                async for item in result:
                    await context.write(item)
            else:
                await result  # a handler that writes with context.write

        return checked
