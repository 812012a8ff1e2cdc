"""The shared plumbing's rules, checked directly: which origins may be contacted,
what the log redactor hides, how listen addresses parse."""

from __future__ import annotations

import httpx
import pytest

from servicekit.config import ConfigError, parse_listen
from servicekit.errors import OriginNotAllowed
from servicekit.logs import redact
from servicekit.origins import DATA_CENTRES, OriginPolicy, normalize_origin

SANDBOX = "http://127.0.0.1:8780"
policy = OriginPolicy([SANDBOX])


@pytest.mark.parametrize("dc", DATA_CENTRES, ids=lambda dc: dc.name)
def test_every_data_centre_is_allowed_and_maps_to_its_desk_host(dc) -> None:  # type: ignore[no-untyped-def]
    assert policy.accounts_server(dc.accounts + "/") == dc.accounts
    if dc.api:
        assert policy.api_domain(dc.api) == dc.api
        if dc.desk:
            assert policy.desk_origin(dc.api) == dc.desk
        else:
            with pytest.raises(OriginNotAllowed):  # unconfirmed host: refuse, do not guess
                policy.desk_origin(dc.api)


@pytest.mark.parametrize("url", [
    "https://evil.example.com",
    "https://accounts.zoho.eu.evil.example.com",
    "https://accounts.zoho.eu@evil.example.com",
    "http://accounts.zoho.eu",  # plain HTTP to a data centre
    "https://accounts.zoho.eu/oauth",  # more than an origin
    "https://accounts.zoho.eu?x=1",
    "http://127.0.0.1:8781",  # the sandbox's host on another port
    "file:///etc/passwd",
    "",
])
def test_anything_else_is_refused_as_an_origin(url: str) -> None:
    with pytest.raises(OriginNotAllowed):
        policy.accounts_server(url)


@pytest.mark.parametrize("url", [
    "https://evil.example.com/oauth/v2/token",
    "https://accounts.zoho.eu.evil.example.com/oauth/v2/token",
    "http://accounts.zoho.eu/oauth/v2/token",
    "http://127.0.0.1:8781/crm/v8/actions/watch",
])
def test_requests_to_other_hosts_are_not_allowed(url: str) -> None:
    assert not policy.allows(url)
    assert policy.allows("https://accounts.zoho.eu/oauth/v2/token?x=1")


async def test_the_request_guard_stops_a_request_before_it_leaves() -> None:
    sent: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(200))
    async with httpx.AsyncClient(transport=transport,
                                 event_hooks={"request": [policy.guard]}) as client:
        await client.get(f"{SANDBOX}/crm/v8/actions/watch")
        with pytest.raises(OriginNotAllowed):
            await client.get("http://169.254.169.254/latest/meta-data")
    assert [str(r.url) for r in sent] == [f"{SANDBOX}/crm/v8/actions/watch"]


def test_extra_origins_must_be_origins() -> None:
    with pytest.raises(ValueError):
        OriginPolicy(["http://127.0.0.1:8780/path"])
    assert normalize_origin("HTTPS://WWW.ZohoApis.EU:443/") == "https://www.zohoapis.eu"


@pytest.mark.parametrize("line, secret", [
    ("refreshing with 1000.0a1b2c3d4e5f.9f8e7d6c5b4a", "1000.0a1b2c3d4e5f.9f8e7d6c5b4a"),
    ("Authorization: Zoho-oauthtoken abc.def.ghi", "abc.def.ghi"),
    ("POST body refresh_token=r3fr3sh&client_secret=s3cr3t", "r3fr3sh"),
    ("POST body refresh_token=r3fr3sh&client_secret=s3cr3t", "s3cr3t"),
    ("revoke?token=tok123", "tok123"),
])
def test_log_redaction_hides_token_shapes(line: str, secret: str) -> None:
    assert secret not in redact(line)
    assert "[redacted]" in redact(line)


def test_listen_addresses_parse_or_name_the_variable() -> None:
    assert str(parse_listen("127.0.0.1:0", "X_LISTEN")) == "127.0.0.1:0"
    assert parse_listen("[::1]:50051", "X_LISTEN").bind == "[::1]:50051"
    for bad in ("nowhere", "127.0.0.1:99999", ":80", "host:"):
        with pytest.raises(ConfigError) as caught:
            parse_listen(bad, "X_LISTEN")
        assert caught.value.variable == "X_LISTEN"
