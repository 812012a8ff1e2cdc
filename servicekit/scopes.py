"""Zoho OAuth scope names: which granted scopes cover a needed one (both services)."""

from __future__ import annotations

from collections.abc import Iterable


def covers(granted: Iterable[str], needed: str) -> bool:
    """`Service.resource.OP` is covered by itself or by `Service.resource.ALL`."""
    family = needed.rsplit(".", 1)[0].lower()
    wanted = {needed.lower(), f"{family}.all"}
    return any(scope.lower() in wanted for scope in granted)
