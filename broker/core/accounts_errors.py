"""Zoho accounts-server failures (zoho_accounts.py's exceptions) as the broker's
domain errors: the one mapping, used on connect (connections.py) and on refresh
(refresher.py)."""

from __future__ import annotations

from broker.core.zoho_accounts import (
    AccountsError,
    AccountsUnavailable,
    ClientRejected,
    InvalidGrant,
    Throttled,
)
from servicekit.errors import (
    THROTTLE_SOURCE_ZOHO,
    ReauthRequired,
    ServiceError,
    ZohoRejected,
    ZohoThrottled,
    ZohoUnavailable,
)

# ClientRejected carries no HTTP status; Zoho's token endpoint refuses a client with 200.
_TOKEN_ENDPOINT_REFUSAL_STATUS = 200


def domain_error(exc: AccountsError, user_id: str, *, refused: str = "") -> ServiceError:
    """The caller's error for `exc`; `refused` names what an invalid_code refused (the
    authorization code or refresh token of a connect), else Zoho's words are kept."""
    if isinstance(exc, InvalidGrant):
        return ReauthRequired(
            user_id, f"Zoho refused the {refused} (invalid_code)" if refused else str(exc)
        )
    if isinstance(exc, Throttled):
        return ZohoThrottled(str(exc), retry_after=exc.retry_after, source=THROTTLE_SOURCE_ZOHO)
    if isinstance(exc, ClientRejected):
        return ZohoRejected(str(exc), zoho_code=exc.zoho_error,
                            http_status=_TOKEN_ENDPOINT_REFUSAL_STATUS)
    return ZohoUnavailable(str(exc), endpoint="token")


def audit_outcome(exc: AccountsError) -> str:
    """The audit table's outcome of a token call that failed with `exc`."""
    if isinstance(exc, InvalidGrant):
        return "invalid_code"
    if isinstance(exc, Throttled):
        return "throttled"
    if isinstance(exc, ClientRejected):
        return "rejected"
    if isinstance(exc, AccountsUnavailable) and exc.maybe_minted:
        return "unknown"  # Zoho may have minted: it counts against the budget
    return "unavailable"
