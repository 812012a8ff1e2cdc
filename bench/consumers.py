"""Consumers (issue 26) against their targets, PostgreSQL, one run on one machine:

1. one consumer with 4 Pull streams acking as they go drains a stored backlog at >= 0.7x
   the rate one WatchNotifications drains it;
2. an event not acknowledged is delivered again within its ack deadline + 1 s (p99);
3. two replicas, 4 Pulls over both, one replica SIGKILLed mid-drain: 0 events lost,
   duplicates only of events outstanding at the kill, each record's order kept;
4. 1,000 idle consumers: the notifier's memory flat over the soak, Pull latency unchanged.

    .venv/bin/python bench/consumers.py [--events 100000] [--kill-events 20000]
        [--idle-consumers 1000] [--soak-seconds 600]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h
import grpc
import psycopg

from notifier.database import DATABASE
from notifier.events.cursor import format_cursor
from notifier.events.log import EventLog
from notifier.events.open_log import open_event_log
from tests.consumers.drain import DrainingPull, judge, seed
from tests.consumers.helpers import new_event
from tests.integration.stack import free_port
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

ACK_DEADLINE = 10


def _notifier(url: str, profile: str = "", **extra: str) -> h.Service:
    """`profile`: run it under `py-spy record` (pip install py-spy), raw stacks there."""
    argv = None
    if profile:
        argv = [str(Path(sys.executable).with_name("py-spy")), "record", "--format", "raw",
                "-o", profile, "--", sys.executable, "-m", "notifier"]
    return h.Service("notifier", argv=argv, env={
        "NOTIFIER_LISTEN": "127.0.0.1:0", "NOTIFIER_BROKER_TARGET": "127.0.0.1:1",
        "NOTIFIER_DATABASE_URL": url,
        "NOTIFIER_ENCRYPTION_KEY": h.broker_env("http://x", url)["BROKER_ENCRYPTION_KEY"],
        "NOTIFIER_INGRESS_LISTEN": f"127.0.0.1:{free_port()}", "NOTIFIER_KEEPER": "off",
        "NOTIFIER_MAX_CONSUMERS": "5000", "LOG_LEVEL": "WARNING", **extra})


async def _create(stub: notifier_pb2_grpc.NotifierServiceStub, name: str, **fields: object
                  ) -> None:
    await stub.CreateConsumer(
        notifier_pb2.CreateConsumerRequest(consumer_id=name, **fields),  # type: ignore[arg-type]
        timeout=30)


async def _acked_until(stub: notifier_pb2_grpc.NotifierServiceStub, name: str) -> str:
    consumer = await stub.GetConsumer(notifier_pb2.GetConsumerRequest(consumer_id=name),
                                      timeout=30)
    return consumer.acked_until


def _postgres_cpu(url: str) -> float:
    """CPU seconds so far of the PostgreSQL backends connected to `url`'s database (the
    notifier's pooled connections live through a phase; this machine's /proc)."""
    plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(plain) as conn:
        pids = [pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()")]
    total = 0.0
    for pid in pids:
        try:
            total += h.cpu_seconds(pid)
        except OSError:
            pass  # ended meanwhile
    return total


async def _watch_drain(stub: notifier_pb2_grpc.NotifierServiceStub, count: int) -> float:
    call = stub.WatchNotifications(notifier_pb2.WatchNotificationsRequest(from_earliest=True))
    started = time.perf_counter()
    received = 0
    async for _ in call:
        received += 1
        if received == count:
            break
    call.cancel()
    return time.perf_counter() - started


async def _pull_drain(stubs: list[notifier_pb2_grpc.NotifierServiceStub], name: str,
                      newest: int, pulls: int = 4, max_outstanding: int = 500
                      ) -> tuple[float, list[DrainingPull]]:
    await _create(stubs[0], name, from_earliest=True, ack_deadline_seconds=60)
    streams = [DrainingPull(stubs[i % len(stubs)], name, i, max_outstanding)
               for i in range(pulls)]
    started = time.perf_counter()
    tasks = [stream.start() for stream in streams]
    while await _acked_until(stubs[0], name) != format_cursor(newest):
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return elapsed, streams


async def drain_and_redelivery(args: argparse.Namespace, report: h.Report) -> None:
    with h.postgres_database("bench_consumers") as url, h.services() as started:
        DATABASE.migrate(url)
        newest = await seed(url, args.events, records=1000)
        notifier = _notifier(url, args.profile)
        started.append(notifier)
        async with grpc.aio.insecure_channel(notifier.address) as channel:
            stub = notifier_pb2_grpc.NotifierServiceStub(channel)
            # CPU seconds per phase of the notifier and of its database backends: on a
            # machine other work shares, what each drain cost, beside how long it took.
            cpu, db_cpu = h.cpu_seconds(notifier.pid), _postgres_cpu(url)
            watch = await _watch_drain(stub, args.events)
            watch_cpu = h.cpu_seconds(notifier.pid) - cpu
            watch_db = _postgres_cpu(url) - db_cpu
            cpu, db_cpu = h.cpu_seconds(notifier.pid), _postgres_cpu(url)
            pull, _ = await _pull_drain([stub], "drain", newest)
            pull_cpu = h.cpu_seconds(notifier.pid) - cpu
            pull_db = _postgres_cpu(url) - db_cpu
            report.row("phase", "events", "seconds", "events/s", "notifier CPU s",
                       "PostgreSQL CPU s")
            report.row("WatchNotifications from_earliest", args.events, watch,
                       args.events / watch, watch_cpu, watch_db)
            report.row("consumer, 4 Pulls acking", args.events, pull, args.events / pull,
                       pull_cpu, pull_db)
            ratio = watch / pull
            report.target("4 Pulls drain >= 0.7x one watch", ratio >= 0.7, f"{ratio:.2f}x")
            late = await _redeliveries(url, stub, args.redeliveries)
            p99 = h.percentile(late, 99)
            report.row("redelivery past the deadline, p50 / p99 (s)",
                       len(late), f"{h.percentile(late, 50):.3f}", f"{p99:.3f}")
            report.target(f"redelivery within deadline ({ACK_DEADLINE} s) + 1 s, p99",
                          len(late) == args.redeliveries and p99 <= 1.0,
                          f"{p99:.3f} s late at p99 over {len(late)}")


async def _redeliveries(url: str, stub: notifier_pb2_grpc.NotifierServiceStub, count: int
                        ) -> list[float]:
    """Events delivered to a stream that ends without acking, in waves a second apart;
    how long after first delivery + deadline each reaches the other stream."""
    await _create(stub, "redeliver", ack_deadline_seconds=ACK_DEADLINE)
    first: dict[str, float] = {}
    late: list[float] = []
    silent = stub.Pull()
    await silent.write(notifier_pb2.PullRequest(consumer_id="redeliver", max_outstanding=1000))
    engine = DATABASE.make_async_engine(url)
    log = open_event_log(engine)
    conn = await log.writer_connection()
    waves = 5
    for wave in range(waves):
        size = count // waves
        await log.append([new_event(f"w{wave}-{i}") for i in range(size)], datetime.now(UTC),
                         conn)
        while len(first) < size * (wave + 1):
            response = await silent.read()
            for event in response.events:
                first[event.cursor] = time.monotonic()
        await asyncio.sleep(1.0)
    await conn.close()
    await engine.dispose()
    await silent.done_writing()
    silent.cancel()
    receiver = stub.Pull()
    await receiver.write(notifier_pb2.PullRequest(consumer_id="redeliver", max_outstanding=1000))
    async with asyncio.timeout(ACK_DEADLINE + 30):
        while len(late) < len(first):
            response = await receiver.read()
            now = time.monotonic()
            for event in response.events:
                late.append(now - first[event.cursor] - ACK_DEADLINE)
            await receiver.write(notifier_pb2.PullRequest(
                ack_cursors=[event.cursor for event in response.events]))
    receiver.cancel()
    return late


async def kill_mid_drain(args: argparse.Namespace, report: h.Report) -> None:
    with h.postgres_database("bench_consumers_kill") as url, h.services() as started:
        DATABASE.migrate(url)
        newest = await seed(url, args.kill_events, records=500)
        replicas = [_notifier(url, NOTIFIER_CONSUMER_POLL_SECONDS="0.2") for _ in range(2)]
        started.extend(replicas)
        channels = [grpc.aio.insecure_channel(r.address) for r in replicas]
        stubs = [notifier_pb2_grpc.NotifierServiceStub(c) for c in channels]
        await _create(stubs[1], "survive", from_earliest=True,
                      ack_deadline_seconds=ACK_DEADLINE)
        pulls = [DrainingPull(stubs[i % 2], "survive", i) for i in range(4)]
        tasks = [pull.start() for pull in pulls]
        while sum(len(p.received) for p in pulls) < args.kill_events // 3:
            await asyncio.sleep(0.01)
        victim = replicas[0]
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=10)
        plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(plain) as conn:
            held = {format_cursor(c) for (c,) in conn.execute(
                "SELECT cursor FROM notifier_consumer_deliveries"
                " WHERE holder LIKE %s AND deadline IS NOT NULL", (f"%-{victim.pid}-%",))}
        # Every event acknowledged at least once: the consumer's acked_until reaches the
        # newest event (a FAIL below, not a crash, when it does not within two minutes).
        all_acked = True
        try:
            async with asyncio.timeout(120):
                while await _acked_until(stubs[1], "survive") != format_cursor(newest):
                    await asyncio.sleep(0.2)
        except TimeoutError:
            all_acked = False
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in channels:
            await channel.close()
        verdict = judge([r for p in pulls for r in p.received],
                        {format_cursor(c) for c in range(1, newest + 1)}, held)
        report.row("SIGKILL mid-drain: delivered / lost / duplicates / outstanding at kill",
                   verdict.delivered, verdict.lost, verdict.duplicates, len(held))
        report.target(
            "SIGKILL of one replica: all acked, 0 lost, duplicates only of outstanding, "
            "order kept",
            all_acked and verdict.lost == 0 and verdict.duplicates_not_outstanding == 0
            and verdict.order_breaks == 0,
            f"acked_until reached the newest: {all_acked}; "
            f"lost {verdict.lost}, duplicates {verdict.duplicates} "
            f"({verdict.duplicates_not_outstanding} not outstanding at the kill), "
            f"order breaks {verdict.order_breaks}")


async def _latencies(log: EventLog, conn: object, stream: grpc.aio.StreamStreamCall,
                     count: int) -> list[float]:
    """Append one event at a time; seconds until the active Pull has it."""
    seen: list[float] = []
    for i in range(count):
        sent = time.monotonic()
        await log.append([new_event(f"live-{time.time_ns()}-{i}")], datetime.now(UTC),
                         conn)  # type: ignore[arg-type]
        response = await stream.read()
        seen.append(time.monotonic() - sent)
        await stream.write(notifier_pb2.PullRequest(
            ack_cursors=[event.cursor for event in response.events]))
        await asyncio.sleep(0.02)
    return seen


async def idle_consumers(args: argparse.Namespace, report: h.Report) -> None:
    with h.postgres_database("bench_consumers_idle") as url, h.services() as started:
        DATABASE.migrate(url)
        notifier = _notifier(url, NOTIFIER_CONSUMER_METRICS_SECONDS="5")
        started.append(notifier)
        engine = DATABASE.make_async_engine(url)
        log = open_event_log(engine)
        conn = await log.writer_connection()
        async with grpc.aio.insecure_channel(notifier.address) as channel:
            stub = notifier_pb2_grpc.NotifierServiceStub(channel)
            await _create(stub, "active")
            stream = stub.Pull()
            await stream.write(notifier_pb2.PullRequest(consumer_id="active"))
            await _latencies(log, conn, stream, 30)  # warm-up: first claims, plans
            before = await _latencies(log, conn, stream, 100)
            for i in range(args.idle_consumers):
                await _create(stub, f"idle-{i:05d}")
            await asyncio.sleep(2)
            rss_start = notifier.status_kib("VmRSS") / 1024
            samples = [rss_start]
            during: list[float] = []
            deadline = time.monotonic() + args.soak_seconds
            while time.monotonic() < deadline:
                during.extend(await _latencies(log, conn, stream, 20))
                await stub.ListConsumers(notifier_pb2.ListConsumersRequest(page_size=500))
                samples.append(notifier.status_kib("VmRSS") / 1024)
                await asyncio.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
            rss_end = notifier.status_kib("VmRSS") / 1024
            stream.cancel()
        await conn.close()
        await engine.dispose()
        p50_before, p50_during = h.median(before), h.median(during)
        report.row(f"{args.idle_consumers} idle consumers: RSS start / end / max (MiB)",
                   f"{rss_start:.1f}", f"{rss_end:.1f}", f"{max(samples):.1f}")
        report.row("Pull latency p50 / p99 (ms) before / during",
                   f"{p50_before * 1000:.1f} / {h.percentile(before, 99) * 1000:.1f}",
                   f"{p50_during * 1000:.1f} / {h.percentile(during, 99) * 1000:.1f}")
        flat = rss_end <= rss_start * 1.05 + 5
        report.target(f"memory flat over {args.soak_seconds:g} s", flat,
                      f"{rss_start:.1f} -> {rss_end:.1f} MiB")
        same = p50_during <= max(1.5 * p50_before, p50_before + 0.005)
        report.target("Pull latency unchanged (p50 within 1.5x or +5 ms)", same,
                      f"{p50_before * 1000:.1f} -> {p50_during * 1000:.1f} ms")


async def run(args: argparse.Namespace) -> bool:
    report = h.Report("consumers", " ".join(["bench/consumers.py", *sys.argv[1:]]))
    phases = {"drain": drain_and_redelivery, "kill": kill_mid_drain, "idle": idle_consumers}
    for name, phase in phases.items():
        if args.only in ("", name):
            await phase(args, report)
    return report.print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--redeliveries", type=int, default=500)
    parser.add_argument("--kill-events", type=int, default=20_000)
    parser.add_argument("--idle-consumers", type=int, default=1000)
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--only", choices=["drain", "kill", "idle"], default="",
                        help="run one phase (drain includes the redelivery check)")
    parser.add_argument("--profile", default="", metavar="PATH",
                        help="the drain phase's notifier under py-spy: raw stacks to PATH")
    return 0 if asyncio.run(run(parser.parse_args())) else 1


if __name__ == "__main__":
    sys.exit(main())
