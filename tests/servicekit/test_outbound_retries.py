"""The one retry loop both services send to Zoho through: what it retries, that it never
sleeps or sends past the caller's deadline, its jitter, and whether a failed request may
have taken effect at Zoho, for each kind of failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from servicekit.deadline import Deadline
from servicekit.origins import OriginPolicy
from servicekit.outbound import (
    MAX_ZOHO_BODY_BYTES,
    GaveUp,
    ResponseTooLarge,
    RetryingSender,
    Transient,
    zoho_http_client,
)

ORIGIN = "http://127.0.0.1:8780"
URL = ORIGIN + "/thing"
Handler = Callable[[httpx.Request], httpx.Response]


def classify(response: httpx.Response) -> str:
    """A service's reading of an answer: 5xx is worth another try, anything else is kept."""
    if response.status_code >= 500:
        raise Transient(f"HTTP {response.status_code}", may_have_taken_effect=True)
    return response.text


class Recorder:
    """A sleep that records its pauses (and takes no time unless `really`)."""

    def __init__(self, *, really: bool = False) -> None:
        self.pauses: list[float] = []
        self.really = really

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)
        if self.really:
            await asyncio.sleep(seconds)


def sender_for(
    client: httpx.AsyncClient, *, attempts: int = 4, attempt_timeout: float = 5.0,
    base: float = 0.01, cap: float = 0.04, sleep: Recorder | None = None,
) -> RetryingSender:
    return RetryingSender(client, max_attempts=attempts, attempt_timeout=attempt_timeout,
                          backoff_base=base, backoff_cap=cap, sleep=sleep or Recorder())


def client_for(handler: Handler) -> httpx.AsyncClient:
    return zoho_http_client(OriginPolicy([ORIGIN]), user_agent="test",
                            transport=httpx.MockTransport(handler))


def failing(*failures: Exception | int, then: str = "ok") -> tuple[Handler, list[int]]:
    """A handler raising (or answering with the status of) each failure in turn, then 200."""
    seen: list[int] = []
    queue = list(failures)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        if not queue:
            return httpx.Response(200, text=then)
        failure = queue.pop(0)
        if isinstance(failure, int):
            return httpx.Response(failure)
        raise failure

    return handle, seen


async def send(sender: RetryingSender, deadline: Deadline | None = None, **kw: bool) -> str:
    return await sender.send("thing", "GET", URL, deadline or Deadline(10), classify, **kw)


@pytest.mark.parametrize("failure", [
    503, httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("full"),
    httpx.ConnectError("refused"), httpx.ReadError("reset"),
    httpx.RemoteProtocolError("peer closed"),
], ids=repr)
async def test_transient_failures_are_retried_until_an_answer(failure: Exception | int) -> None:
    handler, seen = failing(failure, failure)
    async with client_for(handler) as client:
        assert await send(sender_for(client)) == "ok"
    assert len(seen) == 3


async def test_it_gives_up_after_the_bound_with_the_last_outcome() -> None:
    handler, seen = failing(*[503] * 10)
    sleep = Recorder()
    async with client_for(handler) as client:
        with pytest.raises(GaveUp) as caught:
            await send(sender_for(client, attempts=3, sleep=sleep))
    assert len(seen) == 3 and len(sleep.pauses) == 2
    assert (caught.value.attempts, caught.value.outcome) == (3, "HTTP 503")
    assert not caught.value.out_of_time


async def test_an_answer_the_service_refuses_is_not_retried() -> None:
    def refuse(response: httpx.Response) -> str:
        raise LookupError("not this")

    handler, seen = failing()
    async with client_for(handler) as client:
        with pytest.raises(LookupError):
            await sender_for(client).send("thing", "GET", URL, Deadline(10), refuse)
    assert len(seen) == 1


async def test_a_too_large_answer_goes_to_the_service_unretried() -> None:
    handler, seen = failing(then="x" * (MAX_ZOHO_BODY_BYTES + 1))
    async with client_for(handler) as client:
        with pytest.raises(ResponseTooLarge):
            await send(sender_for(client))
    assert len(seen) == 1


@pytest.mark.parametrize(("failure", "taken_effect"), [
    (httpx.ConnectError("refused"), False),
    (httpx.ConnectTimeout("no SYN-ACK"), False),
    (httpx.PoolTimeout("no free connection"), False),
    (httpx.ReadTimeout("sent, no answer"), True),
    (httpx.WriteTimeout("half sent"), True),
    (httpx.ReadError("reset"), True),
    (httpx.RemoteProtocolError("peer closed"), True),
    (503, True),  # the service's classify says so
], ids=repr)
async def test_whether_each_failure_may_have_taken_effect(
    failure: Exception | int, taken_effect: bool
) -> None:
    handler, seen = failing(*[failure] * 5)
    async with client_for(handler) as client:
        with pytest.raises(GaveUp) as caught:
            await send(sender_for(client, attempts=2))
        assert caught.value.may_have_taken_effect is taken_effect
        # A request that must not happen twice is resent only while it surely never left.
        seen.clear()
        with pytest.raises(GaveUp):
            await send(sender_for(client, attempts=2), resend_if_taken_effect=False)
        assert len(seen) == (1 if taken_effect else 2)


async def test_the_flag_sticks_once_any_attempt_may_have_taken_effect() -> None:
    handler, _ = failing(httpx.ReadTimeout("lost"), *[httpx.ConnectError("refused")] * 5)
    async with client_for(handler) as client:
        with pytest.raises(GaveUp) as caught:
            await send(sender_for(client, attempts=3))
    assert caught.value.may_have_taken_effect


async def test_no_attempt_starts_once_the_deadline_has_passed() -> None:
    handler, seen = failing()
    async with client_for(handler) as client:
        with pytest.raises(GaveUp) as caught:
            await send(sender_for(client), Deadline(0))
    assert seen == []
    assert caught.value.out_of_time and caught.value.attempts == 0


async def test_an_attempt_is_cut_at_the_callers_deadline_and_not_retried() -> None:
    calls: list[float] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        await asyncio.sleep(10)
        return httpx.Response(200)

    async with zoho_http_client(OriginPolicy([ORIGIN]), user_agent="test",
                                transport=httpx.MockTransport(slow)) as client:
        started = time.monotonic()
        with pytest.raises(GaveUp) as caught:
            await send(sender_for(client, attempt_timeout=5.0), Deadline(0.3))
        took = time.monotonic() - started
    assert len(calls) == 1 and 0.25 < took < 3.0  # cut at 0.3 s, far from the 5 s attempt
    assert caught.value.out_of_time and caught.value.may_have_taken_effect


async def test_a_timeout_of_our_own_allowance_is_retried() -> None:
    calls: list[float] = []

    async def slow_once(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            await asyncio.sleep(10)
        return httpx.Response(200, text="ok")

    async with zoho_http_client(OriginPolicy([ORIGIN]), user_agent="test",
                                transport=httpx.MockTransport(slow_once)) as client:
        assert await send(sender_for(client, attempt_timeout=0.2), Deadline(5)) == "ok"
    assert len(calls) == 2


@pytest.mark.slow
async def test_it_never_sleeps_past_the_deadline() -> None:
    """With pauses far longer than the time left, it gives up rather than sleep through."""
    for _ in range(5):
        handler, seen = failing(*[503] * 10)
        sleep = Recorder(really=True)
        started = time.monotonic()
        async with client_for(handler) as client:
            with pytest.raises(GaveUp) as caught:
                await send(sender_for(client, attempts=10, base=0.1, cap=5.0, sleep=sleep),
                           Deadline(0.5))
        # The pauses it chose fit in the half second; the wall clock only guards against
        # a sleep through one of the 5 s caps (this machine is too noisy for a tight bound).
        assert sum(sleep.pauses) < 0.5
        assert time.monotonic() - started < 2.5
        if caught.value.out_of_time:
            # A loaded machine overslept the last pause it chose: it then sends nothing more.
            assert len(seen) == len(sleep.pauses)
        else:
            # It stopped itself: no pause left room for another attempt, so none was taken.
            assert len(seen) == len(sleep.pauses) + 1


async def test_full_jitter_stays_within_the_capped_exponential_ceiling() -> None:
    async with client_for(failing()[0]) as client:
        sender = sender_for(client, base=0.1, cap=1.0)
    for number, ceiling in [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (9, 1.0)]:
        pauses = [sender.pause(number) for _ in range(500)]
        assert all(0 <= p <= ceiling for p in pauses)
        # Full jitter: spread over the whole range, not bunched near the ceiling.
        assert min(pauses) < 0.1 * ceiling and max(pauses) > 0.9 * ceiling


async def test_the_pauses_slept_follow_the_jitter_bounds() -> None:
    handler, _ = failing(*[503] * 10)
    sleep = Recorder()
    async with client_for(handler) as client:
        with pytest.raises(GaveUp):
            await send(sender_for(client, attempts=6, base=0.01, cap=0.04, sleep=sleep))
    ceilings = [0.01, 0.02, 0.04, 0.04, 0.04]
    assert len(sleep.pauses) == len(ceilings)
    assert all(0 <= p <= c for p, c in zip(sleep.pauses, ceilings, strict=True))
