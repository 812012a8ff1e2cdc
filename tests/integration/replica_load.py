"""Steady calls through the compose stack while `make compose-test` kills a broker replica:
`python -m tests.integration.replica_load --seconds 20`, run in the `tests` container.

Each worker streams the demo user's CRM and Desk notifications in turn through the notifier
(which asks a broker replica for the token each time: Desk's 5 items make that often) and asks
the brokers for a token directly, over
`dns:///broker:50051` like any caller of the service name. It prints `ready` once every call
kind has worked, a `progress` line a second, and a JSON summary last; it exits 1 if any call
failed or any stream came back short. A caller of a replicated service retries UNAVAILABLE
on another replica, as the notifier does: that is the client below."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import grpc

from sandbox.demo.tenant import DEMO_REFRESH_TOKEN, DEMO_SCOPES
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

RETRY_UNAVAILABLE = json.dumps({
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{
        "name": [{"service": "zoho.broker.v1.TokenBrokerService"}],
        "retryPolicy": {
            "maxAttempts": 4, "initialBackoff": "0.1s", "maxBackoff": "1s",
            "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
})


@dataclass
class Tally:
    calls: int = 0
    failures: list[str] = field(default_factory=list)


APPS = (common_pb2.APP_TYPE_CRM, common_pb2.APP_TYPE_DESK)


async def _list(notifier: notifier_pb2_grpc.NotifierServiceStub,
                app: common_pb2.AppType.ValueType) -> int:
    stream = notifier.ListNotifications(
        notifier_pb2.ListNotificationsRequest(user_id="demo", app_type=app), timeout=30,
    )
    return len([item async for item in stream])


async def _worker(notifier: notifier_pb2_grpc.NotifierServiceStub,
                  broker: broker_pb2_grpc.TokenBrokerServiceStub,
                  expected: dict[Any, int], until: float, tally: Tally) -> None:
    request = broker_pb2.GetTokenRequest(user_id="demo", app_type=common_pb2.APP_TYPE_CRM)
    while time.monotonic() < until:
        try:
            for app in APPS:
                listed = await _list(notifier, app)
                if listed != expected[app]:
                    tally.failures.append(f"ListNotifications: {listed} of {expected[app]}")
            reply = await broker.GetToken(request, timeout=10)
            if not reply.access_token:
                tally.failures.append("GetToken: no token")
        except grpc.aio.AioRpcError as err:
            tally.failures.append(f"{err.code().name}: {err.details()}")
        tally.calls += 3


async def main(seconds: float, concurrency: int) -> int:
    broker_target = os.environ["INTEGRATION_BROKER_TARGETS"].split(",")[0]
    origin = os.environ["INTEGRATION_SANDBOX_ORIGIN"]
    options = [("grpc.service_config", RETRY_UNAVAILABLE), ("grpc.enable_retries", 1)]
    async with grpc.aio.insecure_channel(f"dns:///{broker_target}", options=options) as bch, \
            grpc.aio.insecure_channel(os.environ["INTEGRATION_NOTIFIER_TARGET"]) as nch:
        broker = broker_pb2_grpc.TokenBrokerServiceStub(bch)
        notifier = notifier_pb2_grpc.NotifierServiceStub(nch)
        await broker.CreateConnection(broker_pb2.CreateConnectionRequest(
            user_id="demo", accounts_server=origin, api_domain=origin,
            refresh_token=DEMO_REFRESH_TOKEN, scopes=list(DEMO_SCOPES)), timeout=15)
        expected = {app: await _list(notifier, app) for app in APPS}
        print(f"ready: {expected} items a listing (CRM, Desk)", flush=True)
        tally = Tally()
        started = time.monotonic()
        workers = asyncio.gather(*[
            _worker(notifier, broker, expected, started + seconds, tally)
            for _ in range(concurrency)
        ])
        while not workers.done():
            await asyncio.wait([workers], timeout=1)
            print(f"progress: {time.monotonic() - started:.0f}s calls={tally.calls} "
                  f"failures={len(tally.failures)}", flush=True)
        await workers
    summary = {"calls": tally.calls, "failures": len(tally.failures),
               "first_failures": tally.failures[:5]}
    print(json.dumps(summary), flush=True)
    return 0 if tally.calls and not tally.failures else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=6)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.seconds, args.concurrency)))
