"""Helpers for the sandbox's own tests: a plain HTTP client speaking to the sandbox as a Zoho
client would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sandbox.control.client import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_REFRESH_TOKEN,
    SandboxControl,
)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def refresh(
    http: httpx.AsyncClient,
    sb: SandboxControl,
    refresh_token: str = DEMO_REFRESH_TOKEN,
    *,
    client_id: str = DEMO_CLIENT_ID,
    client_secret: str = DEMO_CLIENT_SECRET,
    in_query: bool = False,
) -> httpx.Response:
    params = {
        "grant_type": "refresh_token",
        "client_id": client_id,
        "client_secret": client_secret,
        "refresh_token": refresh_token,
    }
    if in_query:
        return await http.post(sb.token_url, params=params)
    return await http.post(sb.token_url, data=params)


async def access_token(
    http: httpx.AsyncClient, sb: SandboxControl, refresh_token: str = DEMO_REFRESH_TOKEN
) -> str:
    response = await refresh(http, sb, refresh_token)
    body: dict[str, Any] = response.json()
    return str(body["access_token"])


def auth(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Zoho-oauthtoken {token}", **extra}
