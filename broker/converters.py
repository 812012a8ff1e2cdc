"""Domain records -> protos. Nothing here ever copies a token into a Connection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf import timestamp_pb2

from broker.core.tokens import IssuedAccessToken
from broker.storage.records import Connection
from broker.storage.tables import STATUS_ACTIVE, STATUS_REAUTH_REQUIRED
from zoho.broker.v1 import broker_pb2

_STATUS = {
    STATUS_ACTIVE: broker_pb2.CONNECTION_STATUS_ACTIVE,
    STATUS_REAUTH_REQUIRED: broker_pb2.CONNECTION_STATUS_REAUTH_REQUIRED,
}


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def connection(record: Connection) -> broker_pb2.Connection:
    return broker_pb2.Connection(
        user_id=record.user_id,
        status=_STATUS.get(record.status, broker_pb2.CONNECTION_STATUS_UNSPECIFIED),
        accounts_server=record.accounts_server,
        api_domain=record.api_domain,
        scopes=list(record.scopes),
        token_expires_at=timestamp(record.token_expires_at),
        last_refresh_time=timestamp(record.last_refresh_time),
        last_error=record.last_error,
        desk_org_id=record.desk_org_id,
        create_time=timestamp(record.created_at),
        update_time=timestamp(record.updated_at),
    )


def _token_fields(token: IssuedAccessToken) -> dict[str, Any]:
    return {
        "access_token": token.access_token,
        "api_domain": token.api_domain,
        "expires_at": timestamp(token.expires_at),
        "scopes": list(token.scopes),
        "desk_org_id": token.desk_org_id,
        "grant_id": token.grant_id,
    }


def get_token_response(token: IssuedAccessToken) -> broker_pb2.GetTokenResponse:
    return broker_pb2.GetTokenResponse(**_token_fields(token))


def refresh_token_response(token: IssuedAccessToken) -> broker_pb2.RefreshTokenResponse:
    # The contract (docs/contract.md): RefreshToken returns the same as GetToken.
    return broker_pb2.RefreshTokenResponse(**_token_fields(token))
