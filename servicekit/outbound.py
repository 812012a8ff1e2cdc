"""Calls out of the process to Zoho: the one way both services build their HTTP
client, a send that never holds more of an answer than a cap, and the one retry loop
(capped full-jitter backoff within the caller's deadline) both services send through.

Redirects are never followed (a redirect could carry a token to a host we did not
choose), proxies from the environment are ignored (they would see every token),
and every request passes the origin guard before it leaves.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import httpx

from servicekit import tracing
from servicekit.deadline import Deadline
from servicekit.metrics import observe_zoho
from servicekit.origins import OriginPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")
# An attempt with less time than this left could not get an answer back.
MIN_ATTEMPT_SECONDS = 0.05

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


class Transient(Exception):
    """A failure worth another attempt. `may_have_taken_effect`: Zoho may have acted on
    the request (minted a token, created a channel), so resending it is not harmless."""

    def __init__(self, outcome: str, *, may_have_taken_effect: bool) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.may_have_taken_effect = may_have_taken_effect


class GaveUp(Exception):
    """No usable answer within the attempts and the time allowed. `out_of_time`: the
    caller's deadline ended it (cut the last attempt short, or left no room for one)."""

    def __init__(
        self, outcome: str, *, attempts: int, may_have_taken_effect: bool, out_of_time: bool
    ) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.attempts = attempts
        self.may_have_taken_effect = may_have_taken_effect
        self.out_of_time = out_of_time


class RetryingSender:
    """Sends a request until `classify` accepts Zoho's answer or raises something other
    than `Transient`; gives up after `max_attempts` or when the deadline leaves no room."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        max_attempts: int,
        attempt_timeout: float,
        backoff_base: float,
        backoff_cap: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.max_attempts = max_attempts
        self.attempt_timeout = attempt_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.sleep = sleep

    def pause(self, number: int) -> float:
        """Full jitter after failed attempt `number` (from 0), so replicas and streams
        that failed together do not come back together."""
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**number))

    async def send(
        self,
        endpoint: str,
        method: str,
        url: str,
        deadline: Deadline,
        classify: Callable[[httpx.Response], T],
        *,
        resend_if_taken_effect: bool = True,
        **request: Any,
    ) -> T:
        """`endpoint`: a metrics label and the name in logs, never a URL with data in it.
        `resend_if_taken_effect=False` for a request that must not happen twice (a code
        exchange, a create): it is retried only while it surely never reached Zoho."""
        taken_effect = False
        outcome = "no attempt fitted in the time left"
        number = 0
        while number < self.max_attempts:
            left = deadline.left()
            if left is not None and left <= MIN_ATTEMPT_SECONDS:
                raise GaveUp(outcome, attempts=number, may_have_taken_effect=taken_effect,
                             out_of_time=True)
            timeout = self.attempt_timeout if left is None else min(self.attempt_timeout, left)
            number += 1
            try:
                response = await self._attempt(endpoint, method, url, timeout, request)
                return classify(response)
            except _CutShort as cut:
                raise GaveUp(cut.outcome, attempts=number, out_of_time=True,
                             may_have_taken_effect=taken_effect or cut.may_have_taken_effect,
                             ) from None
            except Transient as failure:
                taken_effect = taken_effect or failure.may_have_taken_effect
                outcome = failure.outcome
                if failure.may_have_taken_effect and not resend_if_taken_effect:
                    break
            pause = self.pause(number - 1)
            left = deadline.left()
            if number >= self.max_attempts or (
                left is not None and left - pause <= MIN_ATTEMPT_SECONDS
            ):
                break
            log.info("zoho %s attempt %d failed (%s); retrying in %.2fs",
                     endpoint, number, outcome, pause)
            await self.sleep(pause)
        log.warning("zoho %s gave up after %d attempt(s): %s", endpoint, number, outcome)
        raise GaveUp(outcome, attempts=number, may_have_taken_effect=taken_effect,
                     out_of_time=False)

    async def _attempt(
        self, endpoint: str, method: str, url: str, timeout: float, request: dict[str, Any]
    ) -> httpx.Response:
        """One exchange, its httpx failures sorted by whether the request may have
        reached Zoho; a `ResponseTooLarge` goes to the caller as it is."""
        started = time.perf_counter()
        status = "error"
        cut_short = timeout < self.attempt_timeout
        try:
            # httpx's timeout bounds each phase; asyncio.timeout bounds the whole exchange.
            async with asyncio.timeout(timeout):
                response = await send_capped(
                    self.client, method, url, timeout=timeout, **request
                )
            status = str(response.status_code)
            return response
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            status = "connect_error"
            failure = Transient(f"connection failed: {type(exc).__name__}",
                                may_have_taken_effect=False)
            if cut_short and isinstance(exc, httpx.TimeoutException):
                raise _CutShort(failure) from None
            raise failure from None
        except (httpx.TimeoutException, TimeoutError):
            status = "timeout"
            failure = Transient(f"timed out after {timeout:.1f}s", may_have_taken_effect=True)
            if cut_short:
                raise _CutShort(failure) from None
            raise failure from None
        except httpx.TransportError as exc:
            status = "transport_error"
            raise Transient(f"connection lost: {type(exc).__name__}",
                            may_have_taken_effect=True) from None
        except ResponseTooLarge:
            status = "too_large"
            raise
        finally:
            observe_zoho(endpoint, status, time.perf_counter() - started)


class _CutShort(Transient):
    """An attempt the caller's deadline, not our per-attempt allowance, timed out."""

    def __init__(self, failure: Transient) -> None:
        super().__init__(f"{failure.outcome}, the caller's deadline",
                         may_have_taken_effect=failure.may_have_taken_effect)
