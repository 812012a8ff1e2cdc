"""X-ZDesk-JWT under attack (issue 23 item 9, issue 22 item 8): desk_jwt.verify against a
real key server on port 0, with the notifier's origin policy.

Injected: a token without `exp`, `alg: none`, HS256 signed with the public key, `jku`,
`x5u` and `jwk` headers pointing at an attacker, unknown kids in bursts, an oversized
key set, a key set on a host that is not allowed. Asserted: JwtRejected, and what the
key servers were asked (one fetch for a burst, nothing at all from the attacker)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from notifier.ingress import desk_jwt
from servicekit.origins import OriginPolicy

ORG, WEBHOOK = "3981311", "4000000012345"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class KeyServer:
    """A JWKS endpoint that counts its requests; `body` is what it serves."""

    body: bytes = b""
    requests: int = 0
    delay: float = 0.0
    url: str = ""
    runner: web.AppRunner | None = field(default=None, repr=False)

    async def start(self) -> KeyServer:
        async def jwks(_: web.Request) -> web.Response:
            self.requests += 1
            await asyncio.sleep(self.delay)
            return web.Response(body=self.body, content_type="application/json")

        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", jwks)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/.well-known/jwks.json"
        return self

    @property
    def origin(self) -> str:
        return self.url.rsplit("/.well-known", 1)[0]


def jwks_of(key: rsa.RSAPrivateKey, kid: str = "k1") -> bytes:
    numbers = key.public_key().public_numbers()
    return json.dumps({"keys": [{"kty": "RSA", "kid": kid, "alg": "RS256",
                                 "n": _b64(numbers.n.to_bytes(256, "big")),
                                 "e": _b64(b"\x01\x00\x01")}]}).encode()


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def desk(key: rsa.RSAPrivateKey) -> AsyncIterator[KeyServer]:
    server = await KeyServer(jwks_of(key)).start()
    yield server
    assert server.runner is not None
    await server.runner.cleanup()


@pytest.fixture
async def attacker() -> AsyncIterator[KeyServer]:
    server = await KeyServer(b'{"keys": []}').start()
    yield server
    assert server.runner is not None
    await server.runner.cleanup()


@pytest.fixture
async def keys(desk: KeyServer, attacker: KeyServer) -> AsyncIterator[desk_jwt.DeskKeys]:
    # Both are allowed origins: what stops the attacker's is that its URL is never used.
    policy = OriginPolicy([desk.origin, attacker.origin])
    async with httpx.AsyncClient() as http:
        yield desk_jwt.DeskKeys(http, policy)


def claims(**changes: Any) -> dict[str, Any]:
    base = {"iss": f"orgId:{ORG}", "aud": f"webhookId:{WEBHOOK}", "iat": int(time.time()),
            "exp": int(time.time()) + 300}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def signed(key: rsa.RSAPrivateKey, body: dict[str, Any], **headers: Any) -> str:
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1", **headers})


async def verify(token: str, keys: desk_jwt.DeskKeys, url: str) -> None:
    await desk_jwt.verify(token, keys, url, org_id=ORG, webhook_id=WEBHOOK)


async def test_a_good_token_passes_and_a_token_without_exp_does_not(
    key: rsa.RSAPrivateKey, keys: desk_jwt.DeskKeys, desk: KeyServer
) -> None:
    await verify(signed(key, claims()), keys, desk.url)
    with pytest.raises(desk_jwt.JwtRejected):
        await verify(signed(key, claims(exp=None)), keys, desk.url)


@pytest.mark.parametrize("changes", [
    {"exp": int(time.time()) - 3600}, {"nbf": int(time.time()) + 3600},
    {"aud": "webhookId:1"}, {"iss": "orgId:1"}, {"exp": "tomorrow"},
])
async def test_claims_are_checked(
    key: rsa.RSAPrivateKey, keys: desk_jwt.DeskKeys, desk: KeyServer, changes: dict[str, Any]
) -> None:
    with pytest.raises(desk_jwt.JwtRejected):
        await verify(signed(key, claims(**changes)), keys, desk.url)


async def test_alg_none_and_hs256_with_the_public_key_are_refused(
    key: rsa.RSAPrivateKey, keys: desk_jwt.DeskKeys, desk: KeyServer
) -> None:
    unsigned = jwt.encode(claims(), None, algorithm="none", headers={"kid": "k1"})
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    head = _b64(json.dumps({"alg": "HS256", "kid": "k1", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims()).encode())
    mac = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    for token in (unsigned, f"{head}.{body}.{_b64(mac)}", f"{head}.{body}."):
        with pytest.raises(desk_jwt.JwtRejected):
            await verify(token, keys, desk.url)


async def test_jku_x5u_and_jwk_headers_are_never_followed(
    key: rsa.RSAPrivateKey, keys: desk_jwt.DeskKeys, desk: KeyServer, attacker: KeyServer
) -> None:
    theirs = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacker.body = jwks_of(theirs)
    numbers = theirs.public_key().public_numbers()
    embedded = {"kty": "RSA", "n": _b64(numbers.n.to_bytes(256, "big")), "e": "AQAB"}
    for headers in ({"jku": attacker.url}, {"x5u": attacker.url}, {"jwk": embedded}):
        with pytest.raises(desk_jwt.JwtRejected):
            await verify(jwt.encode(claims(), theirs, algorithm="RS256",
                                    headers={"kid": "k1", **headers}), keys, desk.url)
    assert attacker.requests == 0


async def test_a_key_set_off_the_allowed_origins_is_never_fetched(
    key: rsa.RSAPrivateKey, desk: KeyServer
) -> None:
    async with httpx.AsyncClient() as http:
        keys = desk_jwt.DeskKeys(http, OriginPolicy([]))
        with pytest.raises(desk_jwt.JwtRejected):
            await verify(signed(key, claims()), keys, desk.url)
    assert desk.requests == 0


async def test_an_oversized_key_set_is_refused(
    key: rsa.RSAPrivateKey, keys: desk_jwt.DeskKeys, desk: KeyServer
) -> None:
    padding = [{"kty": "oct", "kid": f"pad{i}", "k": "A" * 100} for i in range(2000)]
    listed = json.loads(jwks_of(key))["keys"]
    desk.body = json.dumps({"keys": padding + listed}).encode()
    assert len(desk.body) > desk_jwt.MAX_KEY_SET_BYTES
    with pytest.raises(desk_jwt.JwtRejected):
        await verify(signed(key, claims()), keys, desk.url)


@pytest.mark.slow
async def test_a_burst_of_unknown_kids_costs_one_fetch(
    key: rsa.RSAPrivateKey, keys: desk_jwt.DeskKeys, desk: KeyServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 22 item 8: after the refetch window, 50 unknown kids at once gave 50 fetches."""
    desk.delay = 0.2  # the fetch is still in flight when the others arrive

    async def burst(count: int) -> list[BaseException | None]:
        tokens = [signed(key, claims(), kid=f"unknown-{n}") for n in range(count)]
        return await asyncio.gather(*(verify(t, keys, desk.url) for t in tokens),
                                    return_exceptions=True)

    # Cold: nothing cached yet.
    results = await burst(50)
    assert all(isinstance(r, desk_jwt.JwtRejected) for r in results), results
    assert desk.requests == 1
    # Within the refetch window: no fetch at all.
    await burst(50)
    assert desk.requests == 1
    # Past it (the window shortened rather than waited for): one more fetch, not fifty.
    monkeypatch.setattr(desk_jwt, "REFETCH_SECONDS", 0.0)
    await burst(50)
    assert desk.requests == 2
    # The known key still verifies from the set fetched.
    await verify(signed(key, claims()), keys, desk.url)
    assert desk.requests == 2
