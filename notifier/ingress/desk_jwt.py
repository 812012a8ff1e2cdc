"""Desk's X-ZDesk-JWT: RS256, `iss` orgId:<org>, `aud` webhookId:<webhook>, keys at
the Desk host's /.well-known/jwks.json. It does not cover the body; the path secret
does the authenticating, the JWT is checked too when Desk sends one.

PyJWT does the checking (signature, RS256 only, `exp` required, `nbf`, issuer, audience,
leeway); the header's `jku`, `x5u` and `jwk` are never followed: the key set's URL is the
one stored for the subscription's Desk host, fetched only from an allowed origin."""

from __future__ import annotations

import base64
import binascii
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from cachetools import TTLCache

from servicekit import bounded_json
from servicekit.deadline import Deadline
from servicekit.origins import OriginPolicy
from servicekit.singleflight import SingleFlight

log = logging.getLogger(__name__)

KEYS_CACHE_SECONDS = 3600.0
# An unknown key id refetches the set, but not more often than this per URL.
REFETCH_SECONDS = 30.0
LEEWAY_SECONDS = 60
MAX_JWT_CHARS = 8192
# A key set is a few keys: anything bigger is not Desk's, and is not read into memory.
MAX_KEY_SET_BYTES = 64 * 1024
MAX_KEYS = 32
# Key set URLs kept: one per Desk host in use, so a handful; the cap is a bound, not a tuning.
MAX_KEY_SETS = 64
_ALGORITHMS = ["RS256"]


class JwtRejected(Exception):
    pass


@dataclass(frozen=True)
class _KeySet:
    keys: dict[str, Any]  # kid -> RSA public key
    fetched: float  # time.monotonic()


class DeskKeys:
    """JWKS per URL, fetched only from allowed origins, one fetch per URL at a time."""

    def __init__(self, http: httpx.AsyncClient, policy: OriginPolicy) -> None:
        self._http = http
        self._policy = policy
        self._sets: TTLCache[str, _KeySet] = TTLCache(
            maxsize=MAX_KEY_SETS, ttl=KEYS_CACHE_SECONDS
        )
        # Callers get the fetch's error themselves (JwtRejected): nothing to log twice.
        self._fetches: SingleFlight[_KeySet] = SingleFlight(log_failures=False)

    async def key(self, url: str, kid: str) -> Any:
        cached = self._sets.get(url)
        if cached is not None:
            if kid in cached.keys:
                return cached.keys[kid]
            if time.monotonic() - cached.fetched < REFETCH_SECONDS:
                raise JwtRejected("unknown key id")
        # Unknown kids arriving together share one fetch.
        fetched = await self._fetches.do(url, lambda: self._fetch(url), Deadline.unbounded())
        if kid not in fetched.keys:
            raise JwtRejected("unknown key id")
        return fetched.keys[kid]

    async def _fetch(self, url: str) -> _KeySet:
        if not self._policy.allows(url):
            raise JwtRejected("the key set's host is not an allowed Desk origin")
        try:
            async with self._http.stream("GET", url, timeout=5.0) as response:
                response.raise_for_status()
                raw = bytearray()
                async for chunk in response.aiter_bytes():
                    raw += chunk
                    if len(raw) > MAX_KEY_SET_BYTES:
                        raise JwtRejected("the key set is too large")
            body = bounded_json.loads(bytes(raw))
        except (httpx.HTTPError, ValueError) as failed:
            log.warning("fetching Desk's key set failed: %s", type(failed).__name__)
            raise JwtRejected("key set unavailable") from None
        keys: dict[str, Any] = {}
        listed = body.get("keys", []) if isinstance(body, dict) else []
        for jwk in listed if isinstance(listed, list) else []:
            if len(keys) >= MAX_KEYS:
                break
            if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
                continue
            try:
                # Read as RS256 whatever `alg` the set names: only RS256 is accepted below.
                keys[str(jwk.get("kid", ""))] = jwt.PyJWK(jwk, algorithm="RS256").key
            except (jwt.PyJWTError, ValueError, TypeError):
                continue
        fetched = _KeySet(keys, time.monotonic())
        self._sets[url] = fetched
        return fetched


def _check_json_depth(token: str) -> None:
    """PyJWT parses the header and claims with json.loads, whose RecursionError on deep
    nesting is no PyJWTError: both parts pass the shared depth bound first (checked on
    the bytes, not parsed: PyJWT parses them next)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtRejected("not a JWT")
    for part in parts[:2]:
        try:
            raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        except (binascii.Error, ValueError):
            raise JwtRejected("not a JWT") from None
        if bounded_json.nests_deeper_than(raw, bounded_json.MAX_DEPTH):
            raise JwtRejected("not a JWT")


async def verify(
    token: str, keys: DeskKeys, jwks_url: str, *, org_id: str, webhook_id: str
) -> None:
    """Raises JwtRejected unless `token` is a valid RS256 JWT for this org and webhook."""
    if len(token) > MAX_JWT_CHARS:
        raise JwtRejected("not a JWT")
    _check_json_depth(token)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise JwtRejected("not a JWT") from None
    if header.get("alg") not in _ALGORITHMS:
        raise JwtRejected("not RS256")
    public = await keys.key(jwks_url, str(header.get("kid", "")))
    try:
        jwt.decode(
            token,
            public,
            algorithms=_ALGORITHMS,
            # Empty when not yet known for the subscription: that claim is not checked.
            issuer=f"orgId:{org_id}" if org_id else None,
            audience=f"webhookId:{webhook_id}" if webhook_id else None,
            leeway=LEEWAY_SECONDS,
            options={
                "require": ["exp"],
                "verify_iss": bool(org_id),
                "verify_aud": bool(webhook_id),
            },
        )
    except jwt.PyJWTError as why:
        raise JwtRejected(type(why).__name__) from None
