"""Live-events fixtures: users connected with the scopes subscriptions need, and a
Zoho-shaped callback sender (tests/plugins/zoho_callbacks.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sandbox.demo.tenant import DEMO_SCOPES
from tests.plugins.zoho_callbacks import ZohoCallbacks

SUBSCRIBING_SCOPES = [
    *DEMO_SCOPES,
    "Desk.webhooks.CREATE",
    "Desk.webhooks.UPDATE",
    "Desk.webhooks.DELETE",
]


@pytest.fixture
async def callbacks() -> AsyncIterator[ZohoCallbacks]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield ZohoCallbacks(http)


@pytest.fixture
def connect_subscriber(sandbox, broker):
    """connect(user): a broker connection whose grant may create CRM channels and Desk
    webhooks (the demo grant has only Desk's read scopes)."""

    async def connect(user: str = "demo", scopes: list[str] | None = None) -> None:
        granted = SUBSCRIBING_SCOPES if scopes is None else scopes
        if user != "demo":
            await sandbox.add_user(user)
        token = await sandbox.add_refresh_token(user=user, scopes=granted)
        await broker.connect(user, refresh_token=token, scopes=granted)

    return connect
