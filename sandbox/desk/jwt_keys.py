"""Desk's callback signature: an RS256 JWT in `X-ZDesk-JWT` with `iss` `orgId:<id>` and
`aud` `webhookId:<id>`, verifiable with the keys served at `/.well-known/jwks.json`.

The JWT does not cover the body (as at Desk), so one token per webhook is reused until
shortly before it expires: an RSA signature per delivery would cost a millisecond each.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

TOKEN_SECONDS = 300
REUSE_MARGIN_SECONDS = 60


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class SigningKey:
    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self._key.public_key().public_numbers()
        self._public = {"kty": "RSA", "n": _uint(numbers.n), "e": _uint(numbers.e)}
        self.kid = hashlib.sha256(self._public["n"].encode()).hexdigest()[:16]
        self._cache: dict[tuple[str, str], tuple[str, float]] = {}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self._public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing_input = (
            _b64(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def webhook_token(self, org_id: str, webhook_id: str, now: float | None = None) -> str:
        """A JWT for deliveries of one webhook, signed afresh only when the cached one is
        within a minute of expiry. `now` is wall time: receivers check `exp` against theirs."""
        now = time.time() if now is None else now
        key = (org_id, webhook_id)
        cached = self._cache.get(key)
        if cached is not None and cached[1] - REUSE_MARGIN_SECONDS > now:
            return cached[0]
        issued = int(now)
        token = self.sign(
            {
                "iss": f"orgId:{org_id}",
                "aud": f"webhookId:{webhook_id}",
                "iat": issued,
                "exp": issued + TOKEN_SECONDS,
            }
        )
        self._cache[key] = (token, issued + TOKEN_SECONDS)
        return token
