"""What gRPC alone costs to stream 1,000 notifications, and so the best ratio
`bench/streaming.py` could reach with one message per item.

A bare grpc.aio server (no broker, no Zoho, no conversion) streams the same 1,000
CrmChannel messages the notifier would send, to a client in another process, as
`bench/streaming.py` does. With Zoho's pages arriving every `latency` ms and one page
fetched ahead, the notifier can at best finish one page's sending after the last page
arrives, and cannot finish before it has sent every item after the first page arrived,
so the floor of the ratio to a direct read is

    max(direct read + send time of one page, one page's arrival + send time of all)
    / direct read

(The second term wins when sending a page takes longer than fetching the next.)

    .venv/bin/python bench/stream_floor.py [--items 1000] [--page 200] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc
from google.protobuf import timestamp_pb2

from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc


def notifications(count: int) -> list[notifier_pb2.Notification]:
    """Items shaped like the sandbox's demo channels, as the notifier builds them."""
    return [
        notifier_pb2.Notification(
            app_type=common_pb2.APP_TYPE_CRM,
            crm=notifier_pb2.CrmChannel(
                channel_id=str(1000000068001 + i // 5),
                events=["Leads.create", "Leads.edit"],
                channel_expiry=timestamp_pb2.Timestamp(seconds=1796356990),
                notify_url=f"https://hooks.sandbox.example/crm/{i}",
                resource_name="Leads",
                resource_id=str(4000000000000 + i),
                resource_uri="https://www.zohoapis.com/crm/v8/Leads",
            ),
        )
        for i in range(count)
    ]


class _Streamer(notifier_pb2_grpc.NotifierServiceServicer):
    def __init__(self, items: list[notifier_pb2.Notification]) -> None:
        self.items = items

    async def ListNotifications(self, request, context):  # type: ignore[no-untyped-def]
        for item in self.items[: request.page_size or len(self.items)]:
            yield item


def _serve(count: int, ports: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    async def main() -> None:
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        notifier_pb2_grpc.add_NotifierServiceServicer_to_server(
            _Streamer(notifications(count)), server)
        ports.put(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        await server.wait_for_termination()

    asyncio.run(main())


async def _time_streams(port: int, size: int, rounds: int) -> list[float]:
    times = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = notifier_pb2_grpc.NotifierServiceStub(channel)
        request = notifier_pb2.ListNotificationsRequest(page_size=size)
        for _ in range(rounds + 1):
            started = time.perf_counter()
            async for _ in stub.ListNotifications(request):
                pass
            times.append((time.perf_counter() - started) * 1000)
    return times[1:]  # the first round warms the channel up


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--page", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--direct-ms", type=float, default=0.0,
                        help="a measured direct read (bench/streaming.py's median)")
    args = parser.parse_args()
    ports: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=_serve, args=(args.items, ports), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=30)
        whole = statistics.median(asyncio.run(_time_streams(port, args.items, args.rounds)))
        page = statistics.median(asyncio.run(_time_streams(port, args.page, args.rounds)))
    finally:
        server.kill()
    pages = -(-args.items // args.page)
    # A direct read waits for every page in turn. By default only the latency is counted
    # (a low estimate of the read, so a high one of the ratio); --direct-ms takes the
    # direct read bench/streaming.py measured, for a like-for-like ratio.
    direct = args.direct_ms or pages * args.latency_ms
    page_arrival = direct / pages
    stream = max(direct + page, page_arrival + whole)
    print(f"== gRPC streaming floor: {args.items} items, pages of {args.page}, "
          f"{args.latency_ms:g} ms per page")
    print(f"   bare grpc.aio stream of {args.items} items: {whole:.1f} ms "
          f"({whole / args.items * 1000:.0f} us per message)")
    print(f"   one page of {args.page}: {page:.1f} ms")
    print(f"   direct read: {direct:.0f} ms"
          + ("" if args.direct_ms else " (latency only; --direct-ms for a measured one)"))
    print(f"   fastest a stream of one message per item can be: max({direct:.0f} + {page:.1f}, "
          f"{page_arrival:.0f} + {whole:.1f}) = {stream:.1f} ms")
    print(f"   best ratio one message per item can reach: {stream / direct:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
