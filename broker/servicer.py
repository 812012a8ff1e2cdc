"""The gRPC face of the broker: validate, call the domain, convert. Nothing else."""

from __future__ import annotations

import grpc

from broker import converters, validation
from broker.core.connections import ConnectionService, CreateRequest
from broker.core.tokens import TokenService
from servicekit.deadline import Deadline
from servicekit.error_status import rpc_errors
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc

# Of the caller's time, what is kept to send the answer in.
ANSWER_MARGIN_SECONDS = 0.05


def _deadline(context: grpc.aio.ServicerContext) -> Deadline:
    return Deadline.of(context, margin=ANSWER_MARGIN_SECONDS)


class TokenBrokerServicer(broker_pb2_grpc.TokenBrokerServiceServicer):
    def __init__(self, tokens: TokenService, connections: ConnectionService) -> None:
        self.tokens = tokens
        self.connections = connections

    @rpc_errors
    async def CreateConnection(
        self, request: broker_pb2.CreateConnectionRequest, context: grpc.aio.ServicerContext
    ) -> broker_pb2.Connection:
        validation.create(request)
        record = await self.connections.create(
            CreateRequest(
                user_id=request.user_id,
                accounts_server=request.accounts_server,
                api_domain=request.api_domain,
                scopes=list(request.scopes),
                desk_org_id=request.desk_org_id,
                redirect_uri=request.redirect_uri,
                authorization_code=request.authorization_code,
                refresh_token=request.refresh_token,
            ),
            _deadline(context),
        )
        return converters.connection(record)

    @rpc_errors
    async def GetConnection(
        self, request: broker_pb2.GetConnectionRequest, context: grpc.aio.ServicerContext
    ) -> broker_pb2.Connection:
        validation.user_only(request)
        return converters.connection(await self.connections.get(request.user_id))

    @rpc_errors
    async def ListConnections(
        self, request: broker_pb2.ListConnectionsRequest, context: grpc.aio.ServicerContext
    ) -> broker_pb2.ListConnectionsResponse:
        validation.list_connections(request)
        records, next_token = await self.connections.list(request.page_size, request.page_token)
        return broker_pb2.ListConnectionsResponse(
            connections=[converters.connection(r) for r in records], next_page_token=next_token
        )

    @rpc_errors
    async def DeleteConnection(
        self, request: broker_pb2.DeleteConnectionRequest, context: grpc.aio.ServicerContext
    ) -> broker_pb2.DeleteConnectionResponse:
        validation.user_only(request)
        revoked = await self.connections.delete(
            request.user_id, request.revoke, _deadline(context)
        )
        return broker_pb2.DeleteConnectionResponse(revoked=revoked)

    @rpc_errors
    async def GetToken(
        self, request: broker_pb2.GetTokenRequest, context: grpc.aio.ServicerContext
    ) -> broker_pb2.GetTokenResponse:
        validation.get_token(request)
        token = await self.tokens.get_token(
            request.user_id, request.app_type, request.min_ttl_seconds, _deadline(context)
        )
        return converters.get_token_response(token)

    @rpc_errors
    async def RefreshToken(
        self, request: broker_pb2.RefreshTokenRequest, context: grpc.aio.ServicerContext
    ) -> broker_pb2.RefreshTokenResponse:
        validation.refresh_token(request)
        token = await self.tokens.refresh_token(
            request.user_id, request.app_type, request.rejected_access_token, _deadline(context)
        )
        return converters.refresh_token_response(token)
