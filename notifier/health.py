"""NOT_SERVING while the broker cannot be reached: without tokens every call would fail.

Probes the broker's grpc.health.v1 over the process's one channel, every
`interval` seconds, and turns our own service's health to match.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

log = logging.getLogger(__name__)

BROKER_SERVICE = "zoho.broker.v1.TokenBrokerService"


class BrokerHealthWatch:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        set_serving: Callable[[bool], Awaitable[None]],
        *,
        interval: float,
        probe_timeout: float = 2.0,
    ) -> None:
        self._stub = health_pb2_grpc.HealthStub(channel)
        self._set_serving = set_serving
        self._interval = interval
        self._probe_timeout = min(probe_timeout, max(interval, 0.5))
        self._serving: bool | None = None
        self._task: asyncio.Task[None] | None = None

    async def probe(self) -> bool:
        try:
            reply = await self._stub.Check(
                health_pb2.HealthCheckRequest(service=BROKER_SERVICE), timeout=self._probe_timeout
            )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                # A broker that does not report per service: the server's status stands in.
                return await self._probe_server()
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def _probe_server(self) -> bool:
        try:
            reply = await self._stub.Check(
                health_pb2.HealthCheckRequest(service=""), timeout=self._probe_timeout
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def check_once(self) -> bool:
        serving = await self.probe()
        if serving != self._serving:
            log.log(
                logging.INFO if serving else logging.WARNING,
                "token broker is %s: notifier %s",
                "reachable" if serving else "unreachable",
                "SERVING" if serving else "NOT_SERVING",
            )
            self._serving = serving
        # Set every time, not only on a change: the server's own start sets SERVING, and
        # that must not stand if it raced past a failed probe.
        await self._set_serving(serving)
        return serving

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="broker-health-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:
                log.exception("broker health probe failed unexpectedly")
            await asyncio.sleep(self._interval)
