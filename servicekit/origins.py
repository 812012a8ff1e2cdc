"""Which hosts the services may ever contact: Zoho's data centres plus
ZOHO_EXTRA_ORIGINS (the sandbox, in tests and demos). Nothing else.

Every outbound request passes `OriginPolicy.guard` (an httpx request hook), and
every origin that comes from a caller or from Zoho is checked before it is
stored or used, so a forged `api_domain` cannot make us send a token elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from servicekit.errors import OriginNotAllowed


@dataclass(frozen=True)
class DataCentre:
    name: str
    accounts: str
    api: str | None
    desk: str | None


# docs/zoho.md sections 1 and 3. Desk hosts for CA and SA, and the UK API domain,
# are unconfirmed: those routes fail clearly instead of guessing a host.
DATA_CENTRES = (
    DataCentre("US", "https://accounts.zoho.com", "https://www.zohoapis.com", "https://desk.zoho.com"),
    DataCentre("EU", "https://accounts.zoho.eu", "https://www.zohoapis.eu", "https://desk.zoho.eu"),
    DataCentre("IN", "https://accounts.zoho.in", "https://www.zohoapis.in", "https://desk.zoho.in"),
    DataCentre(
        "AU", "https://accounts.zoho.com.au", "https://www.zohoapis.com.au", "https://desk.zoho.com.au"
    ),
    DataCentre("JP", "https://accounts.zoho.jp", "https://www.zohoapis.jp", "https://desk.zoho.jp"),
    DataCentre("CA", "https://accounts.zohocloud.ca", "https://www.zohoapis.ca", None),
    DataCentre("SA", "https://accounts.zoho.sa", "https://www.zohoapis.sa", None),
    DataCentre(
        "CN", "https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn", "https://desk.zoho.com.cn"
    ),
    DataCentre("UK", "https://accounts.zoho.uk", None, None),
)

_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(url: str) -> str | None:
    """`scheme://host[:port]` in lower case, or None if `url` is more than an origin."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.username or parts.password or parts.query or parts.fragment:
        return None
    if parts.path not in ("", "/"):
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


class OriginPolicy:
    def __init__(self, extra_origins: list[str]) -> None:
        self.extra: frozenset[str] = frozenset(
            origin for origin in map(normalize_origin, extra_origins) if origin
        )
        invalid = [o for o in extra_origins if not normalize_origin(o)]
        if invalid:
            raise ValueError(f"not an origin (scheme://host[:port]): {', '.join(invalid)}")
        self._accounts = {dc.accounts for dc in DATA_CENTRES}
        self._api = {dc.api: dc for dc in DATA_CENTRES if dc.api}
        desk = {dc.desk for dc in DATA_CENTRES if dc.desk}
        self._all = self._accounts | set(self._api) | desk | self.extra

    def accounts_server(self, url: str, field: str = "accounts_server") -> str:
        origin = normalize_origin(url)
        if origin is None or not (origin in self._accounts or origin in self.extra):
            raise OriginNotAllowed(url[:200], field)
        return origin

    def api_domain(self, url: str, field: str = "api_domain") -> str:
        origin = normalize_origin(url)
        if origin is None or not (origin in self._api or origin in self.extra):
            raise OriginNotAllowed(url[:200], field)
        return origin

    def desk_origin(self, api_domain: str) -> str:
        """The Desk host of the data centre whose API domain is `api_domain` (checked when
        the broker stored it; the guard checks every request again)."""
        if api_domain in self.extra:
            return api_domain
        centre = self._api.get(api_domain)
        if centre is None or centre.desk is None:
            raise OriginNotAllowed(api_domain, "api_domain (no known Desk host for it)")
        return centre.desk

    def allows(self, url: str | httpx.URL) -> bool:
        parsed = httpx.URL(str(url))
        return normalize_origin(f"{parsed.scheme}://{parsed.netloc.decode()}") in self._all

    async def guard(self, request: httpx.Request) -> None:
        """httpx request hook: the last check before anything leaves the process."""
        if not self.allows(request.url):
            raise OriginNotAllowed(f"{request.url.scheme}://{request.url.host}", "url")
