"""Which hosts the sandbox may send callbacks and URL checks to (`--deliver-to`)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = "127.0.0.0/8,::1/128,localhost"


class DeliverTo:
    """Networks (CIDR) and host names; a URL's host must be in one. Names are compared as
    written, never resolved, so a name allows only itself."""

    def __init__(self, spec: str = LOOPBACK) -> None:
        self.networks: list[Network] = []
        self.names: set[str] = set()
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                if not all(c.isalnum() or c in "-._" for c in item):
                    raise ValueError(f"not a network or host name: {item!r}") from None
                self.names.add(item.lower())

    def allows(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not host:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host.lower() in self.names
        return any(address in network for network in self.networks)
