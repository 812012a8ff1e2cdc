"""Calls out of the process to Zoho: the one way both services build their HTTP
client, and a send that never holds more of an answer than a cap.

Redirects are never followed (a redirect could carry a token to a host we did not
choose), proxies from the environment are ignored (they would see every token),
and every request passes the origin guard before it leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import httpx

from servicekit import tracing
from servicekit.origins import OriginPolicy

# A CRM page of 200 channels is ~100 KB and a token answer well under 1 KB: 8 MiB
# is generous for Zoho and still bounds what a hostile or broken answer can cost.
MAX_ZOHO_BODY_BYTES = 8 * 1024 * 1024


# Called once a request has fully left and its answer is awaited, when set in the sending
# task's context: the notifier's paging starts the next page's request and lets it leave
# before spending its time on the current page (see notifier/paging.py).
request_sent: ContextVar[Callable[[], None] | None] = ContextVar("request_sent", default=None)


class ResponseTooLarge(Exception):
    """Zoho's answer (after decompression) is larger than the cap; none of it is used."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit // (1024 * 1024)} MiB")
        self.limit = limit


def zoho_http_client(
    policy: OriginPolicy,
    *,
    user_agent: str,
    timeout: float = 30.0,
    transport: httpx.AsyncBaseTransport | None = None,
    max_connections: int = 200,
) -> httpx.AsyncClient:
    """One client per process, shared by every call."""
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        event_hooks={"request": [policy.guard]},
        timeout=timeout,
        headers={"User-Agent": user_agent},
        transport=tracing.traced_transport(transport or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=50)
        )),
    )


async def send_capped(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    max_bytes: int = MAX_ZOHO_BODY_BYTES,
    **kwargs: Any,
) -> httpx.Response:
    """Like `client.request`, but reads at most `max_bytes` of the (decoded) body."""
    sent = request_sent.get()
    if sent is not None:
        kwargs["extensions"] = {**kwargs.get("extensions", {}), "trace": _tracer(sent)}
    request = client.build_request(method, url, **kwargs)
    response = await client.send(request, stream=True)
    try:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise ResponseTooLarge(max_bytes)
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise ResponseTooLarge(max_bytes)
    finally:
        await response.aclose()
    # A plain response holding the capped body, so callers read it as usual.
    return httpx.Response(
        response.status_code,
        headers=[(k, v) for k, v in response.headers.multi_items()
                 if k.lower() not in ("content-encoding", "transfer-encoding", "content-length")],
        content=bytes(body),
        request=request,
    )


def _tracer(sent: Callable[[], None]) -> Callable[[str, dict[str, Any]], Any]:
    """An httpx `trace` extension that calls `sent` when the request body has gone out."""

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith("send_request_body.complete"):
            sent()

    return trace
