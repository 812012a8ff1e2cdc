"""Desk's X-ZDesk-JWT: RS256, `iss` orgId:<org>, `aud` webhookId:<webhook>, keys at
the Desk host's /.well-known/jwks.json. It does not cover the body; the path secret
does the authenticating, the JWT is checked too when Desk sends one."""

from __future__ import annotations

import base64
import binascii
import logging
import time
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from servicekit import bounded_json
from servicekit.origins import OriginPolicy

log = logging.getLogger(__name__)

KEYS_CACHE_SECONDS = 3600.0
# An unknown key id refetches the set, but not more often than this per URL.
REFETCH_SECONDS = 30.0
LEEWAY_SECONDS = 60
MAX_JWT_CHARS = 8192


class JwtRejected(Exception):
    pass


def _b64(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise JwtRejected("not base64url") from None


def _int(value: Any) -> int:
    if not isinstance(value, str):
        raise JwtRejected("a key lacks n or e")
    return int.from_bytes(_b64(value), "big")


class DeskKeys:
    """JWKS per URL, fetched only from allowed origins."""

    def __init__(self, http: httpx.AsyncClient, policy: OriginPolicy) -> None:
        self._http = http
        self._policy = policy
        self._sets: dict[str, tuple[dict[str, rsa.RSAPublicKey], float]] = {}

    async def key(self, url: str, kid: str) -> rsa.RSAPublicKey:
        now = time.monotonic()
        cached = self._sets.get(url)
        if cached is not None:
            keys, fetched = cached
            if kid in keys and now - fetched < KEYS_CACHE_SECONDS:
                return keys[kid]
            if now - fetched < REFETCH_SECONDS:
                raise JwtRejected("unknown key id")
        keys = await self._fetch(url)
        self._sets[url] = (keys, now)
        if kid not in keys:
            raise JwtRejected("unknown key id")
        return keys[kid]

    async def _fetch(self, url: str) -> dict[str, rsa.RSAPublicKey]:
        if not self._policy.allows(url):
            raise JwtRejected("the key set's host is not an allowed Desk origin")
        try:
            response = await self._http.get(url, timeout=5.0)
            response.raise_for_status()
            body = bounded_json.loads(response.content)
        except (httpx.HTTPError, ValueError) as failed:
            log.warning("fetching Desk's key set failed: %s", type(failed).__name__)
            raise JwtRejected("key set unavailable") from None
        keys: dict[str, rsa.RSAPublicKey] = {}
        for jwk in body.get("keys", []) if isinstance(body, dict) else []:
            if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
                continue
            try:
                keys[str(jwk.get("kid", ""))] = rsa.RSAPublicNumbers(
                    _int(jwk.get("e")), _int(jwk.get("n"))
                ).public_key()
            except (JwtRejected, ValueError):
                continue
        return keys


async def verify(
    token: str, keys: DeskKeys, jwks_url: str, *, org_id: str, webhook_id: str
) -> None:
    """Raises JwtRejected unless `token` is a valid RS256 JWT for this org and webhook."""
    if len(token) > MAX_JWT_CHARS or token.count(".") != 2:
        raise JwtRejected("not a JWT")
    head, body, signature = token.split(".")
    try:
        header = bounded_json.loads(_b64(head))
        claims = bounded_json.loads(_b64(body))
    except ValueError:
        raise JwtRejected("not JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise JwtRejected("not a JWT")
    if header.get("alg") != "RS256":
        raise JwtRejected("not RS256")
    public = await keys.key(jwks_url, str(header.get("kid", "")))
    try:
        public.verify(
            _b64(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        raise JwtRejected("bad signature") from None
    now = time.time()
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if isinstance(exp, int | float) and now > exp + LEEWAY_SECONDS:
        raise JwtRejected("expired")
    if isinstance(nbf, int | float) and now < nbf - LEEWAY_SECONDS:
        raise JwtRejected("not yet valid")
    if org_id and claims.get("iss") != f"orgId:{org_id}":
        raise JwtRejected("wrong issuer")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if webhook_id and f"webhookId:{webhook_id}" not in audiences:
        raise JwtRejected("wrong audience")
