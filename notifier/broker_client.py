"""Access tokens from the token broker, over the process's one channel to it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
from grpc_status import rpc_status

from servicekit import services, tracing
from servicekit.deadline import Deadline
from servicekit.error_status import PassthroughError, error_info
from servicekit.errors import ServiceError, Unavailable
from servicekit.logs import REQUEST_ID_KEY, request_id
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerToken:
    """An access token the broker handed out, and where to use it. repr never shows it."""

    access_token: str = field(repr=False)
    api_domain: str
    desk_org_id: str = ""
    scopes: tuple[str, ...] = ()
    # Changes with each new grant (reconnect): keys what is cached about the account.
    grant_id: str = ""


class BrokerClient:
    def __init__(self, channel: grpc.aio.Channel, *, timeout_cap: float = 10.0) -> None:
        self._stub = broker_pb2_grpc.TokenBrokerServiceStub(channel)
        self._timeout_cap = timeout_cap

    async def get_token(self, user_id: str, app_type: int, deadline: Deadline) -> BrokerToken:
        request = broker_pb2.GetTokenRequest(
            user_id=user_id, app_type=common_pb2.AppType.ValueType(app_type)
        )
        reply = await self._call(self._stub.GetToken, request, deadline, "GetToken")
        return _grant(reply)

    async def refresh_token(
        self,
        user_id: str,
        app_type: int,
        rejected: BrokerToken,
        deadline: Deadline,
    ) -> BrokerToken:
        request = broker_pb2.RefreshTokenRequest(
            user_id=user_id, app_type=common_pb2.AppType.ValueType(app_type),
            rejected_access_token=rejected.access_token,
        )
        reply = await self._call(self._stub.RefreshToken, request, deadline, "RefreshToken")
        return _grant(reply)

    async def _call(self, method: Any, request: Any, deadline: Deadline, name: str) -> Any:
        """One retry when the broker replica itself failed the call (UNAVAILABLE with no
        reason: it died or closed under it), which the channel sends to another replica.
        A reason (ZOHO_UNAVAILABLE...) is the broker's answer and is never repeated; both
        calls are safe to repeat."""
        for attempt in (1, 2):
            try:
                with tracing.client_span(f"{services.BROKER_SERVICE_NAME}/{name}") as carry:
                    return await method(request, timeout=deadline.timeout(self._timeout_cap),
                                        metadata=_metadata() + carry)
            except grpc.aio.AioRpcError as err:
                failure = _translate(err, name)
                left = deadline.left()
                if attempt == 2 or err.code() != grpc.StatusCode.UNAVAILABLE \
                        or not isinstance(failure, Unavailable) or (left is not None and left <= 0):
                    raise failure from None
        raise AssertionError("unreachable")


def _grant(reply: broker_pb2.GetTokenResponse | broker_pb2.RefreshTokenResponse) -> BrokerToken:
    return BrokerToken(reply.access_token, reply.api_domain, reply.desk_org_id, tuple(reply.scopes),
                 reply.grant_id)


def _metadata() -> tuple[tuple[str, str], ...]:
    return ((REQUEST_ID_KEY, request_id.get()),)


def _translate(err: grpc.aio.AioRpcError, method: str) -> ServiceError:
    """The broker's typed errors pass through unchanged (NOT_CONNECTED keeps its message);
    a status without a reason means the broker itself could not be reached or failed."""
    proto = rpc_status.from_call(cast(Any, err))
    if proto is not None and error_info(proto) is not None:
        return PassthroughError(cast(grpc.Status, rpc_status.to_status(proto)))
    log.warning("broker %s failed without a reason: %s", method, err.code().name)
    return Unavailable(
        f"the token broker could not be reached ({err.code().name}); try again later",
        metadata={"dependency": "token-broker", "grpc_code": err.code().name},
    )
