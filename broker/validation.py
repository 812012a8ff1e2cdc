"""Checks of the broker's requests: every bad field named at once, never INTERNAL."""

from __future__ import annotations

from broker.core.connections import MAX_PAGE_SIZE
from servicekit import identifiers
from servicekit.errors import Violations
from servicekit.validation import check_app_type, check_user_id
from zoho.broker.v1 import broker_pb2

# Zoho's access tokens live 3600 s: more than this could never be satisfied.
MAX_MIN_TTL = 3000
MAX_TOKEN_CHARS = 4096
MAX_SCOPES = 100


def _token_field(v: Violations, field: str, value: str, *, required: bool) -> None:
    if not value:
        if required:
            v.add(field, "required")
    elif len(value) > MAX_TOKEN_CHARS:
        v.add(field, f"at most {MAX_TOKEN_CHARS} characters")
    elif not value.isprintable() or value != value.strip():
        v.add(field, "no spaces, control characters or NUL bytes")


def _origin_field(v: Violations, field: str, value: str, *, required: bool) -> None:
    # Which origins are allowed is the OriginPolicy's call (ORIGIN_NOT_ALLOWED);
    # here only the shape is checked.
    if not value:
        if required:
            v.add(field, "required")
    elif len(value) > 255 or not value.isprintable():
        v.add(field, "must be an origin such as https://accounts.zoho.eu")


def create(request: broker_pb2.CreateConnectionRequest) -> None:
    v = Violations()
    check_user_id(v, request.user_id)
    _origin_field(v, "accounts_server", request.accounts_server, required=True)
    grant = request.WhichOneof("grant")
    if grant is None:
        v.add("authorization_code", "give authorization_code or refresh_token")
    elif grant == "authorization_code":
        _token_field(v, "authorization_code", request.authorization_code, required=True)
        if not request.redirect_uri:
            v.add("redirect_uri", "required with authorization_code")
        elif not identifiers.is_http_url(request.redirect_uri):
            v.add("redirect_uri", "must be the http(s) URL the code was issued for")
    else:
        _token_field(v, "refresh_token", request.refresh_token, required=True)
        if not request.api_domain:
            v.add("api_domain", "required when importing a refresh_token")
    _origin_field(v, "api_domain", request.api_domain, required=False)
    if len(request.scopes) > MAX_SCOPES:
        v.add("scopes", f"at most {MAX_SCOPES}")
    for i, scope in enumerate(request.scopes):
        if not identifiers.is_scope(scope):
            v.add(f"scopes[{i}]", "must be a Zoho scope such as ZohoCRM.notifications.READ")
    if request.desk_org_id and identifiers.desk_org_id(request.desk_org_id) is None:
        v.add("desk_org_id", identifiers.DESK_ORG_ID_RULE)
    v.raise_if_any()


def user_only(request: broker_pb2.GetConnectionRequest | broker_pb2.DeleteConnectionRequest
              ) -> None:
    v = Violations()
    check_user_id(v, request.user_id)
    v.raise_if_any()


def list_connections(request: broker_pb2.ListConnectionsRequest) -> None:
    v = Violations()
    if not 0 <= request.page_size <= MAX_PAGE_SIZE:
        v.add("page_size", f"must be between 0 (default) and {MAX_PAGE_SIZE}")
    if len(request.page_token) > 1024:
        v.add("page_token", "not a page token this service issued")
    v.raise_if_any()


def get_token(request: broker_pb2.GetTokenRequest) -> None:
    v = Violations()
    check_user_id(v, request.user_id)
    check_app_type(v, request.app_type, allow_unspecified=True)
    if not 0 <= request.min_ttl_seconds <= MAX_MIN_TTL:
        v.add("min_ttl_seconds", f"must be between 0 and {MAX_MIN_TTL}")
    v.raise_if_any()


def refresh_token(request: broker_pb2.RefreshTokenRequest) -> None:
    v = Violations()
    check_user_id(v, request.user_id)
    check_app_type(v, request.app_type, allow_unspecified=True)
    _token_field(v, "rejected_access_token", request.rejected_access_token, required=True)
    v.raise_if_any()
