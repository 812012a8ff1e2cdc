"""NOT_SERVING while the broker cannot be reached, or refuses this notifier: without
tokens every call would fail.

Probes the broker's grpc.health.v1 over the process's one channel, every `interval`
seconds, and turns our own service's health to match. Under mutual TLS the broker's
health answers any certificate its CA signed, so that alone would say SERVING for a
notifier whose certificate the caller policy refuses: then GetToken and RefreshToken
are also asked, with an empty request (a broker that lets us call them answers
INVALID_ARGUMENT; one that does not, PERMISSION_DENIED). The state and its cause are
logged when they change, not on every probe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from servicekit import services
from servicekit.background import BackgroundTask
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc

log = logging.getLogger(__name__)


# A policy that let us in is asked again this often (it changes only when the broker
# restarts with another one); one that refused us, on every probe.
POLICY_RECHECK_SECONDS = 30.0
UNREACHABLE = "token broker is unreachable or not serving"


class BrokerHealthWatch:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        set_serving: Callable[[bool], Awaitable[None]],
        *,
        interval: float,
        probe_timeout: float = 2.0,
        check_policy: bool = False,
    ) -> None:
        """`check_policy`: the notifier presents a client certificate (mutual TLS)."""
        self._stub = health_pb2_grpc.HealthStub(channel)
        self._broker = broker_pb2_grpc.TokenBrokerServiceStub(channel)
        self._set_serving = set_serving
        self._interval = interval
        self._probe_timeout = min(probe_timeout, max(interval, 0.5))
        self._check_policy = check_policy
        self._policy_refusal: str | None = None
        self._policy_checked_at: float | None = None
        self._serving: bool | None = None
        self._why = ""
        self._failures_in_a_row = 0
        self._task = BackgroundTask("broker-health-watch")

    async def probe(self) -> bool:
        serving, _ = await self.probe_with_cause()
        return serving

    async def probe_with_cause(self) -> tuple[bool, str]:
        """(serving, why not)."""
        if not await self._probe_health():
            return False, UNREACHABLE
        if self._check_policy:
            refusal = await self._refused_by_policy()
            if refusal:
                return False, refusal
        return True, ""

    async def _probe_health(self) -> bool:
        try:
            reply = await self._stub.Check(
                health_pb2.HealthCheckRequest(service=services.BROKER_SERVICE_NAME),
                timeout=self._probe_timeout,
            )
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                # A broker that does not report per service: the server's status stands in.
                return await self._probe_server()
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def _refused_by_policy(self) -> str | None:
        now = time.monotonic()
        if self._policy_refusal is None and self._policy_checked_at is not None \
                and now - self._policy_checked_at < POLICY_RECHECK_SECONDS:
            return None
        refusal = None
        for method, request in (
            (self._broker.GetToken, broker_pb2.GetTokenRequest()),
            (self._broker.RefreshToken, broker_pb2.RefreshTokenRequest()),
        ):
            try:
                await method(request, timeout=self._probe_timeout)
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.PERMISSION_DENIED:
                    refusal = (f"the token broker's caller policy refuses this notifier's "
                               f"certificate ({err.details()}): check BROKER_CALLER_POLICY "
                               "and NOTIFIER_BROKER_TLS_CERT")
                    break
                if err.code() in (grpc.StatusCode.UNAVAILABLE,
                                  grpc.StatusCode.DEADLINE_EXCEEDED):
                    return UNREACHABLE
        self._policy_refusal, self._policy_checked_at = refusal, now
        return refusal

    async def _probe_server(self) -> bool:
        try:
            reply = await self._stub.Check(
                health_pb2.HealthCheckRequest(service=""), timeout=self._probe_timeout
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def check_once(self) -> bool:
        serving, why = await self.probe_with_cause()
        # One failed probe of a broker that was serving is not yet an outage: on a loaded
        # machine a single health call can outlast its timeout. Two in a row are (a
        # policy refusal counts at once: it is an answer, not a silence).
        self._failures_in_a_row = 0 if serving else self._failures_in_a_row + 1
        if not serving and self._serving and self._failures_in_a_row < 2 \
                and why == UNREACHABLE:
            return True
        if (serving, why) != (self._serving, self._why):
            if serving:
                log.info("token broker is reachable: notifier SERVING")
            else:
                log.warning("%s: notifier NOT_SERVING", why)
            self._serving, self._why = serving, why
        # Set every time, not only on a change: the server's own start sets SERVING, and
        # that must not stand if it raced past a failed probe.
        await self._set_serving(serving)
        return serving

    def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:
                log.exception("broker health probe failed unexpectedly")
            await asyncio.sleep(self._interval)
