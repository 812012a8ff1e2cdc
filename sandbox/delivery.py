"""Outbound callbacks: the sandbox POSTs to its subscribers as Zoho does.

Each subscription (a CRM channel, a Desk webhook) has a lane: its deliveries go out one at
a time in the order they were made, so order holds per subscription when nothing fails
(Desk's promise), while lanes run side by side under one bound on requests in flight
(`delivery_concurrency`). Every request has a timeout (Desk 5 s, CRM 10 s), so a dead or
slow receiver costs its own lane and one slot, never the sandbox. Like Zoho, a failed
delivery is lost (and counted) unless a `retry` delivery fault asks for more attempts.

Deliveries go only to hosts `--deliver-to` allows (loopback by default): the sandbox must
not become a way to make requests to arbitrary hosts. Others are logged as `blocked`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from sandbox.deliver_to import DeliverTo
from sandbox.delivery_faults import DeliveryFaults, DeliveryPlan
from sandbox.delivery_stats import DeliveryLog, Outcome

REORDER_WAIT_SECONDS = 1.0  # how long a `reorder` delivery waits for one to overtake it


@dataclass
class Delivery:
    app: str  # "crm" or "desk"
    subscription: str  # channel id or webhook id
    url: str
    body: bytes
    timeout: float
    headers: dict[str, str] = field(default_factory=dict)
    # Called with the receiver's status (None when there was no answer): Desk drops a
    # webhook that answers 410.
    on_status: Callable[[int | None], None] | None = None
    plan: DeliveryPlan = field(default_factory=DeliveryPlan)
    done: asyncio.Future[list[Outcome]] | None = None


class Deliverer:
    def __init__(
        self,
        deliver_to: DeliverTo,
        concurrency: Callable[[], int],
        now: Callable[[], float] = time.time,
    ) -> None:
        self.deliver_to = deliver_to
        self._now = now  # the sandbox clock, for drop faults' windows
        self.faults = DeliveryFaults()
        self.log = DeliveryLog()
        self._concurrency = concurrency
        self._slots_size = 0
        self._slots = asyncio.Semaphore(1)
        self._lanes: dict[tuple[str, str], deque[Delivery]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: set[asyncio.Future[list[Outcome]]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._seq = itertools.count(1)
        self._idle = asyncio.Event()
        self._idle.set()

    # ---- lifecycle -------------------------------------------------------------------

    def clear(self) -> None:
        """Forget queued deliveries, faults and counters (a reset between tests)."""
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        for future in self._pending:
            # Whoever waits on a cancelled delivery hears it never went out.
            if not future.done():
                future.set_result([])
        self._pending.clear()
        self._lanes.clear()
        self.faults.clear()
        self.log.clear()
        self._idle.set()

    async def close(self) -> None:
        self.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # limit=0: the semaphore is the bound; no redirects, no proxy from the env.
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=60)
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, skip_auto_headers=("User-Agent",)
            )
        return self._session

    def _slot(self) -> asyncio.Semaphore:
        size = max(1, int(self._concurrency()))
        if size != self._slots_size:
            # In-flight sends release the old semaphore; new ones take the new bound.
            self._slots, self._slots_size = asyncio.Semaphore(size), size
        return self._slots

    # ---- submitting ------------------------------------------------------------------

    def submit(self, delivery: Delivery) -> asyncio.Future[list[Outcome]]:
        loop = asyncio.get_running_loop()
        delivery.done = loop.create_future()
        self._pending.add(delivery.done)
        delivery.done.add_done_callback(self._pending.discard)
        delivery.plan = self.faults.plan_for(delivery.app, delivery.subscription, self._now())
        if delivery.plan.drop:
            # Lost at Zoho's end: nothing is sent, the loss is logged and counted.
            outcome = self.log.record(
                next(self._seq), delivery, delivery.url, "dropped", 0.0, 1, ""
            )
            delivery.done.set_result([outcome])
            return delivery.done
        if delivery.plan.delay_seconds:
            # Sent apart from its lane, so later deliveries overtake it.
            self._spawn(self._delayed(delivery))
            return delivery.done
        key = (delivery.app, delivery.subscription)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = deque()
            lane.append(delivery)
            self._spawn(self._drain(key, lane))
        else:
            lane.append(delivery)
        return delivery.done

    def _spawn(self, coro: Any) -> None:
        self._idle.clear()
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # ---- sending ---------------------------------------------------------------------

    async def _drain(self, key: tuple[str, str], lane: deque[Delivery]) -> None:
        try:
            while lane:
                delivery = lane.popleft()
                if delivery.plan.reorder:
                    overtaker = await self._next_in(lane)
                    if overtaker is not None:
                        await self._deliver(overtaker)
                await self._deliver(delivery)
        finally:
            if self._lanes.get(key) is lane:
                del self._lanes[key]

    async def _next_in(self, lane: deque[Delivery]) -> Delivery | None:
        deadline = time.monotonic() + REORDER_WAIT_SECONDS
        while not lane and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return lane.popleft() if lane else None

    async def _delayed(self, delivery: Delivery) -> None:
        await asyncio.sleep(delivery.plan.delay_seconds)
        await self._deliver(delivery)

    async def _deliver(self, delivery: Delivery) -> None:
        plan = delivery.plan
        outcomes = []
        url = plan.url or delivery.url
        copies = 2 if plan.duplicate else 1
        for copy in range(copies):
            attempts = 1 + plan.retries
            for attempt in range(1, attempts + 1):
                outcome = await self._send_once(delivery, url, attempt, copy > 0)
                outcomes.append(outcome)
                if outcome.ok or outcome.status == "blocked" or attempt == attempts:
                    break
                await asyncio.sleep(plan.backoff_seconds)
        if delivery.done is not None and not delivery.done.done():
            delivery.done.set_result(outcomes)

    async def _send_once(self, delivery: Delivery, url: str, attempt: int, dup: bool) -> Outcome:
        note = "duplicate" if dup else ("wrong_url" if url != delivery.url else "")
        if not self.deliver_to.allows(url):
            return self.log.record(next(self._seq), delivery, url, "blocked", 0.0, attempt, note)
        status: int | str
        async with self._slot():
            started = time.perf_counter()
            try:
                async with self.client().post(
                    url,
                    data=delivery.body,
                    headers={"Content-Type": "application/json", **delivery.headers},
                    timeout=aiohttp.ClientTimeout(total=delivery.timeout),
                    allow_redirects=False,
                ) as response:
                    await response.read()
                    status = response.status
            except TimeoutError:
                status = "timeout"
            except aiohttp.ClientError:
                status = "error"
            latency_ms = (time.perf_counter() - started) * 1000
        if delivery.on_status is not None:
            delivery.on_status(status if isinstance(status, int) else None)
        return self.log.record(next(self._seq), delivery, url, status, latency_ms, attempt, note)
