"""Error bodies in each Zoho product's own shape."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sandbox.http import json_response
from sandbox.state import Config


def crm_error(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> web.Response:
    """CRM's envelope: `{"code","details","message","status":"error"}`."""
    return json_response(
        {"code": code, "details": details or {}, "message": message, "status": "error"},
        status=status,
    )


def desk_error(
    status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None
) -> web.Response:
    """Desk's shape: `{"errorCode","message"}` plus `errors` for INVALID_DATA."""
    body: dict[str, Any] = {"errorCode": code, "message": message}
    if errors is not None:
        body["errors"] = errors
    return json_response(body, status=status)


def desk_invalid(field: str, error_type: str, message: str) -> web.Response:
    return desk_error(
        422,
        "INVALID_DATA",
        "The data is invalid due to validation restrictions",
        [{"fieldName": field, "errorType": error_type, "errorMessage": message}],
    )


def internal_error(family: str) -> web.Response:
    if family == "crm":
        return crm_error(500, "INTERNAL_ERROR", "Internal Server Error")
    if family == "desk":
        return desk_error(
            500, "INTERNAL_SERVER_ERROR", "An internal server error occurred. Try again later."
        )
    # Zoho's accounts server answers its outages with an HTML page, not JSON.
    return web.Response(
        status=500,
        text="<html><body><h1>500 Internal Server Error</h1></body></html>",
        content_type="text/html",
    )


def throttled(family: str, config: Config) -> web.Response:
    if family == "crm":
        if config.crm_throttle_code == "TOO_MANY_REQUESTS":
            return crm_error(
                429,
                "TOO_MANY_REQUESTS",
                "The number of API requests has exceeded the allowed limit.",
                {"retry_after": config.crm_retry_after_seconds},
            )
        # The notifications spec's own 429 carries no details.
        return json_response(
            {
                "code": "RATE_LIMIT_EXCEEDED",
                "message": "Too many requests. Please try again later.",
                "status": "error",
            },
            status=429,
        )
    return desk_error(
        429, "TOO_MANY_REQUESTS", "You have exceeded the API request limit. Try again later."
    )
