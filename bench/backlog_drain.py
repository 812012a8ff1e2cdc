"""One watcher draining a stored backlog (WatchNotifications from_earliest) against a
bare grpc.aio server streaming the same messages (the per-message floor), same run.

    .venv/bin/python bench/backlog_drain.py [--events 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h
import grpc
from google.protobuf import struct_pb2

from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc


def event(i: int) -> notifier_pb2.NotificationEvent:
    values = struct_pb2.Struct()
    values.update({"Company": f"Zylker {i}", "Phone": "555-0100"})
    return notifier_pb2.NotificationEvent(
        subscription_id="sub_" + "0" * 24, user_id="demo", app_type=common_pb2.APP_TYPE_CRM,
        module="Leads", operation="edit", record_id=str(5725767000003000064 + i),
        affected_fields=["Company", "Phone"], values=values,
    )


class _Floor(notifier_pb2_grpc.NotifierServiceServicer):
    def __init__(self, count: int) -> None:
        self.items = []
        for i in range(count):
            item = event(i)
            item.cursor = f"{i + 1:016x}"
            item.received_time.GetCurrentTime()
            self.items.append(item)

    async def WatchNotifications(self, request, context):  # type: ignore[no-untyped-def]
        for item in self.items:
            await context.write(item)


def _serve_floor(count: int, ports: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    async def main() -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        notifier_pb2_grpc.add_NotifierServiceServicer_to_server(_Floor(count), server)
        ports.put(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())


async def _drain(address: str, count: int) -> float:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = notifier_pb2_grpc.NotifierServiceStub(channel)
        call = stub.WatchNotifications(notifier_pb2.WatchNotificationsRequest(from_earliest=True))
        started = time.perf_counter()
        received = 0
        async for _ in call:
            received += 1
            if received == count:
                break
        elapsed = time.perf_counter() - started
        call.cancel()
        return elapsed


async def _fill(url: str, count: int) -> None:
    from notifier.database import DATABASE
    from notifier.events.log import NewEvent
    from notifier.events.open_log import open_event_log

    DATABASE.migrate(url)
    engine = DATABASE.make_async_engine(url)
    log = open_event_log(engine)
    conn = await log.writer_connection()  # as the ingress's writer appends
    for start in range(0, count, 2000):
        batch = [NewEvent(f"k{i}", event(i)) for i in range(start, min(count, start + 2000))]
        await log.append(batch, datetime.now(UTC), conn)
    await conn.close()
    await engine.dispose()


async def run(args: argparse.Namespace) -> bool:
    report = h.Report("backlog drain", " ".join(["bench/backlog_drain.py", *sys.argv[1:]]))
    context = multiprocessing.get_context("spawn")
    ports: multiprocessing.Queue = context.Queue()  # type: ignore[type-arg]
    floor = context.Process(target=_serve_floor, args=(args.events, ports), daemon=True)
    floor.start()
    with h.postgres_database("bench_backlog") as url, h.services() as started:
        await _fill(url, args.events)
        from tests.integration.stack import free_port

        argv = None
        if args.profile:
            argv = [str(Path(sys.executable).with_name("py-spy")), "record", "--format", "raw",
                    "-o", args.profile, "--", sys.executable, "-m", "notifier"]
        notifier = h.Service("notifier", argv=argv, env={
            "NOTIFIER_LISTEN": "127.0.0.1:0", "NOTIFIER_BROKER_TARGET": "127.0.0.1:1",
            "NOTIFIER_DATABASE_URL": url, "NOTIFIER_ENCRYPTION_KEY": h.broker_env(
                "http://x", url)["BROKER_ENCRYPTION_KEY"],
            "NOTIFIER_INGRESS_LISTEN": f"127.0.0.1:{free_port()}", "LOG_LEVEL": "WARNING"})
        started.append(notifier)
        port = ports.get(timeout=60)
        ours, bare = [], []
        # CPU seconds of the serving process per round: less at the mercy of other load.
        ours_cpu, bare_cpu = [], []
        for _ in range(args.rounds):
            before = h.cpu_seconds(notifier.pid)
            ours.append(await _drain(notifier.address, args.events))
            ours_cpu.append(h.cpu_seconds(notifier.pid) - before)
            before = h.cpu_seconds(floor.pid)
            bare.append(await _drain(f"127.0.0.1:{port}", args.events))
            bare_cpu.append(h.cpu_seconds(floor.pid) - before)
    floor.kill()
    mine, base = statistics.median(ours), statistics.median(bare)
    mine_cpu, base_cpu = statistics.median(ours_cpu), statistics.median(bare_cpu)
    report.row("stream", f"median of {args.rounds} (s)", "per event (us)", "all rounds (s)",
               "server CPU per event (us)")
    report.row("WatchNotifications from_earliest", mine, mine / args.events * 1e6,
               " ".join(f"{t:.2f}" for t in ours), mine_cpu / args.events * 1e6)
    report.row("bare grpc.aio, same messages", base, base / args.events * 1e6,
               " ".join(f"{t:.2f}" for t in bare), base_cpu / args.events * 1e6)
    report.row("server CPU ratio (not a target)", f"{mine_cpu / base_cpu:.2f}x")
    report.target("drain within 1.2x of the floor", mine <= 1.2 * base, f"{mine / base:.2f}x")
    return report.print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", default="", help="py-spy raw profile of the notifier")
    return 0 if asyncio.run(run(parser.parse_args())) else 1


if __name__ == "__main__":
    sys.exit(main())
