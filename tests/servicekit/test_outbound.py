"""The capped send: an answer larger than the cap is refused while it streams in,
so a hostile or broken Zoho never makes a service hold it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from servicekit.origins import OriginPolicy
from servicekit.outbound import ResponseTooLarge, send_capped, zoho_http_client

ORIGIN = "http://127.0.0.1:8780"
CHUNK = b"x" * 65536


class EndlessBody(httpx.AsyncByteStream):
    def __init__(self) -> None:
        self.chunks_sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            self.chunks_sent += 1
            yield CHUNK


def client_for(handler: httpx.MockTransport) -> httpx.AsyncClient:
    return zoho_http_client(OriginPolicy([ORIGIN]), user_agent="test", transport=handler)


async def test_an_endless_answer_is_cut_just_past_the_cap() -> None:
    body = EndlessBody()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=body))
    async with client_for(transport) as client:
        with pytest.raises(ResponseTooLarge):
            await send_capped(client, "GET", f"{ORIGIN}/crm/v8/actions/watch", max_bytes=1 << 20)
    assert body.chunks_sent == (1 << 20) // len(CHUNK) + 1


async def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, headers={"content-length": str(10**9)},
                                       stream=EndlessBody())
    )
    async with client_for(transport) as client:
        with pytest.raises(ResponseTooLarge):
            await send_capped(client, "GET", f"{ORIGIN}/x", max_bytes=1 << 20)


async def test_an_answer_within_the_cap_reads_as_usual() -> None:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(207, json={"watch": [{"code": "SUCCESS"}]},
                                       headers={"Retry-After": "3"})
    )
    async with client_for(transport) as client:
        response = await send_capped(client, "POST", f"{ORIGIN}/crm/v8/actions/watch",
                                     json={"watch": []})
    assert response.status_code == 207
    assert response.json() == {"watch": [{"code": "SUCCESS"}]}
    assert response.headers["Retry-After"] == "3"


async def test_the_client_follows_no_redirect_and_ignores_proxy_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": f"{ORIGIN}/elsewhere"})

    async with client_for(httpx.MockTransport(answer)) as client:
        assert not client.follow_redirects and not client.trust_env
        response = await send_capped(client, "GET", f"{ORIGIN}/x")
    assert response.status_code == 302
    assert seen == [f"{ORIGIN}/x"]


async def test_request_sent_is_called_when_the_request_has_left_not_when_the_answer_comes() -> None:
    """A real HTTP server holds its answer: the hook fires while the answer is still held."""
    import asyncio

    from aiohttp import web

    from servicekit.outbound import request_sent

    arrived, release = asyncio.Event(), asyncio.Event()

    async def held(request: web.Request) -> web.Response:
        arrived.set()
        await release.wait()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/held", held)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    origin = f"http://{host}:{port}"
    calls = []
    try:
        async with zoho_http_client(OriginPolicy([origin]), user_agent="test") as client:
            hook = request_sent.set(lambda: calls.append("sent"))
            try:
                answer = asyncio.create_task(send_capped(client, "GET", f"{origin}/held"))
            finally:
                request_sent.reset(hook)
            await asyncio.wait_for(arrived.wait(), 5)
            assert calls == ["sent"] and not answer.done()
            release.set()
            assert (await asyncio.wait_for(answer, 5)).json() == {"ok": True}
            # Outside that context nothing is called.
            release.set()
            await send_capped(client, "GET", f"{origin}/held")
            assert calls == ["sent"]
    finally:
        await runner.cleanup()
