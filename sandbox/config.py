"""Zoho's limits and the sandbox's readings of Zoho, adjustable per test through
`POST /_sandbox/config` (`SandboxControl.configure`); `reset` restores these defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Config:
    """Zoho's limits, adjustable so a test can provoke them cheaply."""

    mint_limit: int = 10  # access tokens per refresh token per window
    mint_window_seconds: float = 600.0
    max_live_access_tokens: int = 15
    max_refresh_tokens_per_user_client: int = 20
    default_lifetime_seconds: int = 3600
    default_grant_code_ttl_seconds: float = 120.0
    # Zoho's forum says the throttle body comes with 200, a third-party client saw 400.
    throttle_status: int = 200
    desk_webhook_limit: int = 20
    # 401 code for a dead token: INVALID_TOKEN (seen in practice), AUTHORIZATION_FAILED (the
    # notifications spec) or AUTHENTICATION_FAILURE.
    crm_token_error_code: str = "INVALID_TOKEN"
    # 429 code of the throttle fault: RATE_LIMIT_EXCEEDED (the notifications spec) or
    # TOO_MANY_REQUESTS (elsewhere in v8, with details.retry_after in seconds).
    crm_throttle_code: str = "RATE_LIMIT_EXCEEDED"
    crm_retry_after_seconds: int = 60
    # A PUT or PATCH without channel_expiry: "one_hour" gives the channel one hour from now
    # (which can move it earlier, as Zoho has been seen to do), "keep" leaves it.
    crm_write_without_expiry: str = "one_hour"
    # The spec types channel_id as a string; older docs as a long.
    crm_numeric_channel_id: bool = False
    # Desk checks a webhook URL (GET, then POST) before creating it or changing its URL.
    desk_url_check: bool = True
    # Organization.json's examples give the orgs' booleans as strings ("false").
    desk_org_booleans_as_strings: bool = False
    # Outbound callbacks: how many in flight at once, and per-request timeouts.
    delivery_concurrency: int = 64
    crm_delivery_timeout_seconds: float = 10.0
    desk_delivery_timeout_seconds: float = 5.0
    # CRM affected_fields: "names" (["Company"]) or "by_record" ([{"<id>": ["Company"]}]).
    crm_affected_fields_shape: str = "names"
    # Get Records / deleted records: If-Modified-Since keeps records modified in that very
    # second ("inclusive", as integrations observe) or only later ones ("after", the spec's
    # wording "modified after").
    crm_if_modified_since: str = "inclusive"
    # Nothing modified since If-Modified-Since: 204 (the spec) or 304 (integrations handle it).
    crm_not_modified_304: bool = False
    # Get Records page tokens live this long (info.page_token_expiry).
    crm_page_token_ttl_seconds: float = 86400.0
    # Records page tokens reach (Zoho: 100,000); lower it to provoke PAGINATION_LIMIT_EXCEEDED.
    crm_page_token_record_limit: int = 100_000
    # Permanently deleted records: "null" deleted_by/created_by/display_name (the spec's
    # example) or "objects" (its schema marks them required).
    crm_deleted_permanent_users: str = "null"
    # GET /api/v1/tickets/{id} of a trashed ticket: "show" it (isTrashed true) or answer
    # "not_found" (404 URL_NOT_FOUND), as for a ticket deleted for good.
    desk_trashed_ticket: str = "show"
    # API credits: the edition of an org no test has configured. "none" counts calls but
    # never refuses one (long benchmarks of other parts must keep running).
    credits_default_edition: str = "none"


# Settings that take one of a few strings.
CONFIG_CHOICES: dict[str, tuple[str, ...]] = {
    "crm_token_error_code": ("INVALID_TOKEN", "AUTHORIZATION_FAILED", "AUTHENTICATION_FAILURE"),
    "crm_throttle_code": ("RATE_LIMIT_EXCEEDED", "TOO_MANY_REQUESTS"),
    "crm_write_without_expiry": ("one_hour", "keep"),
    "crm_affected_fields_shape": ("names", "by_record"),
    "crm_if_modified_since": ("inclusive", "after"),
    "crm_deleted_permanent_users": ("null", "objects"),
    "desk_trashed_ticket": ("show", "not_found"),
    "credits_default_edition": (
        "none",
        "free",
        "standard",
        "professional",
        "enterprise",
        "ultimate",
    ),
}
