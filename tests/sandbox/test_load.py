"""500 concurrent connections against the real process: every request answered correctly."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from sandbox.control.client import DEMO_DESK_ORG_ID, SandboxControl
from tests.sandbox.conftest import access_token, auth

CONNECTIONS = 500


@pytest.mark.slow
async def test_500_concurrent_connections(sandbox: SandboxControl, http):
    token = await access_token(http, sandbox)
    headers = auth(token, orgId=DEMO_DESK_ORG_ID)
    paths = ["/crm/v8/actions/watch", "/crm/v8/actions/watch?page=2", "/api/v1/webhooks"]
    connector = aiohttp.TCPConnector(limit=CONNECTIONS, force_close=False)
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector) as session:
        gate = asyncio.Event()

        async def one(i: int) -> tuple[int, int]:
            await gate.wait()  # all 500 connect at once
            async with session.get(sandbox.origin + paths[i % 3], headers=headers) as response:
                body = await response.json()
                size = len(body.get("watch") or body.get("data") or [])
                return response.status, size

        tasks = [asyncio.create_task(one(i)) for i in range(CONNECTIONS * 2)]
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    assert {status for status, _ in results} == {200}
    assert {size for _, size in results} == {200, 50, 5}
    assert elapsed < 15, elapsed
    counts = await sandbox.call_counts()
    assert counts["crm.watch"] + counts["desk.webhooks"] == CONNECTIONS * 2
