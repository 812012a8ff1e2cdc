"""What the operator commands say when the broker says no: one or two sentences per
ErrorInfo reason that tell the operator what to do, and, when no call reached the
broker at all, what actually failed (nothing listening, or a TLS handshake)."""

from __future__ import annotations

from typing import Any, cast

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from servicekit.error_status import error_info
from servicekit.errors import THROTTLE_SOURCE_BUDGET


def explain(err: grpc.aio.AioRpcError, *, broker: str, user_id: str = "") -> str:
    """One or two sentences an operator can act on, from the error's reason."""
    status = rpc_status.from_call(cast(Any, err))
    info = error_info(status) if status is not None else None
    reason = info.reason if info is not None else ""
    meta = dict(info.metadata) if info is not None else {}
    user = meta.get("user_id") or user_id or "this user"
    reconnect = f"zoho-broker connect --user {user}"
    if reason == "NOT_CONNECTED":
        return f"{user} has no Zoho connection. Connect them with `{reconnect}`."
    if reason == "NOT_FOUND":
        return f"There is no connection for {user}: `zoho-broker connections list` shows them."
    if reason == "REAUTH_REQUIRED":
        return (
            f"Zoho refused the grant ({err.details()}). The user must consent again: "
            f"`{reconnect}` (an authorization code works once, for about 2 minutes)."
        )
    if reason == "MISSING_SCOPE":
        scope = meta.get("scope", "a needed scope")
        return (
            f"The grant lacks {scope}. Connect again asking for it: `{reconnect} --scope {scope}` "
            "(an old grant never gains scopes)."
        )
    if reason == "ZOHO_THROTTLED":
        wait = _retry_seconds(status) or meta.get("retry_after_seconds", "a while")
        who = ("the broker's own budget" if meta.get("source") == THROTTLE_SOURCE_BUDGET
               else "Zoho")
        return f"{who} is limiting new tokens for this grant: try again in {wait} s."
    if reason in ("ZOHO_UNAVAILABLE", "ZOHO_BAD_RESPONSE"):
        return f"Zoho's accounts server failed ({err.details()}): try again later."
    if reason == "ORIGIN_NOT_ALLOWED":
        return (
            f"{meta.get('origin', 'That server')} is not a Zoho data centre and not in the "
            f"broker's ZOHO_EXTRA_ORIGINS ({meta.get('field', 'origin')}); add it there if it "
            "is trusted."
        )
    if reason == "ZOHO_REJECTED":
        code = meta.get("zoho_code", "?")
        hint = (
            " Check the broker's ZOHO_CLIENT_ID and ZOHO_CLIENT_SECRET, and that --client-id "
            "is the same client."
            if code.startswith("invalid_client")
            else ""
        )
        return f"Zoho refused the request ({code}).{hint}"
    if reason == "INVALID_ARGUMENT":
        fields = _violations(status)
        return "The broker refused the request: " + (fields or err.details() or "bad request")
    if reason == "PERMISSION_DENIED" or err.code() == grpc.StatusCode.PERMISSION_DENIED:
        return f"The broker refused this caller: {err.details()}"
    if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
            and not reason:
        return unreachable(err, broker=broker)
    return f"The broker answered {err.code().name}: {err.details()}"


# What gRPC's text says when the TCP connection worked and TLS did not: the broker is
# running, so "is it running?" would send the operator the wrong way.
_TLS_MARKERS = ("ssl", "tls", "handshake", "certificate", "socket closed", "tsi_")


def unreachable(err: grpc.aio.AioRpcError, *, broker: str) -> str:
    """Why no call reached the broker, in words that match what happened."""
    details = err.details() or ""
    text = details.lower()
    if "connection refused" in text or "name resolution" in text or "dns" in text:
        return (f"Cannot reach the broker at {broker}: nothing accepted the connection "
                f"({details}). Is it running, and is --broker (ZOHO_BROKER_TARGET) right?")
    if any(marker in text for marker in _TLS_MARKERS):
        return (f"The broker at {broker} is listening, but the TLS handshake failed ({details}). "
                "A TLS broker needs --tls-ca (ZOHO_BROKER_TLS_CA), the CA of its certificate; "
                "under mutual TLS also --tls-cert and --tls-key (ZOHO_BROKER_TLS_CERT, "
                "ZOHO_BROKER_TLS_KEY), a certificate its client CA signed. A plaintext broker "
                "needs none of them.")
    return f"Cannot reach the broker at {broker} ({err.code().name}: {details})."


def _retry_seconds(status: Any) -> str | None:
    for detail in getattr(status, "details", []):
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return str(max(1, round(info.retry_delay.ToTimedelta().total_seconds())))
    return None


def _violations(status: Any) -> str:
    for detail in getattr(status, "details", []):
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return "; ".join(f"{v.field}: {v.description}" for v in bad.field_violations)
    return ""
