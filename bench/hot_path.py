"""Hot path: GetToken for a connection with a valid token vs grpc.health.v1.Health/Check,
on the same broker process, same client channel, same concurrency.

    .venv/bin/python bench/hot_path.py            # 6 pairs of 2 s phases
    .venv/bin/python bench/hot_path.py --quick    # 3 pairs of 1 s phases
    .venv/bin/python bench/hot_path.py --profile out/   # broker under py-spy (pip install py-spy)

Processes: the sandbox, one broker (`python -m broker`, PostgreSQL by default) and this
script as the only client: one channel, N workers each keeping one call in flight.
Phases alternate Check, GetToken, Check, GetToken... so drift hits both alike; the
targets compare totals of the same run: GetToken rps >= 0.8x Check rps and
GetToken p99 <= 2x Check p99.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sandbox.control.client import SandboxControl
from sandbox.demo.tenant import DEMO_REFRESH_TOKEN, DEMO_SCOPES
from tests.plugins.processes import child_pids
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc
from zoho.common.v1 import common_pb2

SERVICE = "zoho.broker.v1.TokenBrokerService"


async def phase(call, concurrency: int, seconds: float, max_calls: int,
                server_pid: int | None = None) -> dict:
    """`concurrency` workers each keep one call in flight for `seconds` (or until
    `max_calls` calls in all). Returns calls, errors, elapsed and latencies (s)."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop_at and len(latencies) < max_calls:
            started = time.perf_counter()
            try:
                await call()
            except grpc.aio.AioRpcError as err:
                errors[err.code().name] = errors.get(err.code().name, 0) + 1
                continue
            latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    server_cpu = h.cpu_seconds(server_pid) if server_pid else 0.0
    client_cpu = h.cpu_seconds(os.getpid())
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    server_cpu = (h.cpu_seconds(server_pid) - server_cpu) if server_pid else 0.0
    client_cpu = h.cpu_seconds(os.getpid()) - client_cpu
    return {"calls": len(latencies), "errors": errors, "elapsed": elapsed,
            "latencies": latencies, "server_cpu": server_cpu, "client_cpu": client_cpu}


async def run(args: argparse.Namespace, sandbox_origin: str, broker_address: str,
              broker_pid: int) -> h.Report:
    async with SandboxControl(sandbox_origin) as sandbox:
        await sandbox.reset()
    channel = grpc.aio.insecure_channel(broker_address)
    stub = broker_pb2_grpc.TokenBrokerServiceStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    await stub.CreateConnection(broker_pb2.CreateConnectionRequest(
        user_id="demo", accounts_server=sandbox_origin, refresh_token=DEMO_REFRESH_TOKEN,
        api_domain=sandbox_origin, scopes=list(DEMO_SCOPES)), timeout=10)
    check_request = health_pb2.HealthCheckRequest(service=SERVICE)
    token_request = broker_pb2.GetTokenRequest(user_id="demo", app_type=common_pb2.APP_TYPE_CRM)

    async def check() -> None:
        await health.Check(check_request, timeout=5)

    async def get_token() -> None:
        reply = await stub.GetToken(token_request, timeout=5)
        assert reply.access_token

    kinds = {"Check": check, "GetToken": get_token}
    # Warm-up: connections, code paths, the broker's cache.
    for call in kinds.values():
        await phase(call, args.concurrency, args.warmup, 10**6)

    results: dict[str, list[dict]] = {"Check": [], "GetToken": []}
    report = h.Report(
        "hot path: GetToken (valid token) vs Health/Check, one broker process",
        "bench/hot_path.py" + (" --quick" if args.quick else ""),
    )
    report.row("phase", "kind", "calls", "errors", "rps", "p50 ms", "p99 ms",
               "broker cpu %", "broker cpu us/call", "client cpu %")
    for n in range(args.pairs):
        for kind, call in kinds.items():
            r = await phase(call, args.concurrency, args.seconds, args.max_calls, broker_pid)
            results[kind].append(r)
            report.row(f"{n + 1}", kind, r["calls"], sum(r["errors"].values()) or "",
                       r["calls"] / r["elapsed"], 1000 * h.percentile(r["latencies"], 50),
                       1000 * h.percentile(r["latencies"], 99),
                       f"{100 * r['server_cpu'] / r['elapsed']:.0f}",
                       f"{1e6 * r['server_cpu'] / max(1, r['calls']):.0f}",
                       f"{100 * r['client_cpu'] / r['elapsed']:.0f}")
    await channel.close()

    totals = {}
    for kind, rs in results.items():
        latencies = [x for r in rs for x in r["latencies"]]
        totals[kind] = {
            "rps": sum(r["calls"] for r in rs) / sum(r["elapsed"] for r in rs),
            "p50": 1000 * h.percentile(latencies, 50),
            "p99": 1000 * h.percentile(latencies, 99),
            "errors": sum(sum(r["errors"].values()) for r in rs),
        }
        cpu_per_call = sum(r["server_cpu"] for r in rs) / max(1, len(latencies))
        report.row("all", kind, len(latencies), totals[kind]["errors"] or "",
                   totals[kind]["rps"], totals[kind]["p50"], totals[kind]["p99"], "",
                   f"{1e6 * cpu_per_call:.0f}")
    rps_ratio = totals["GetToken"]["rps"] / totals["Check"]["rps"]
    p99_ratio = totals["GetToken"]["p99"] / totals["Check"]["p99"]
    per_pair = [g["calls"] / g["elapsed"] / (c["calls"] / c["elapsed"])
                for c, g in zip(results["Check"], results["GetToken"], strict=True)]
    report.target("GetToken rps >= 0.8x Check rps", rps_ratio >= 0.8,
                  f"{rps_ratio:.2f}x (per pair: {', '.join(f'{x:.2f}' for x in per_pair)})")
    report.target("GetToken p99 <= 2x Check p99", p99_ratio <= 2.0,
                  f"{p99_ratio:.2f}x ({totals['GetToken']['p99']:.2f} ms vs "
                  f"{totals['Check']['p99']:.2f} ms)")
    report.target("no errors", totals["GetToken"]["errors"] + totals["Check"]["errors"] == 0,
                  f"{totals['GetToken']['errors'] + totals['Check']['errors']} errors")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 pairs of 1 s phases")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each phase")
    parser.add_argument("--pairs", type=int, default=6, help="Check+GetToken phase pairs")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-calls", type=int, default=200_000, help="cap per phase")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument("--native", action="store_true", help="with --profile: C frames too")
    parser.add_argument("--profile", metavar="DIR",
                        help="broker under `py-spy record`: DIR/broker-hot.txt (collapsed stacks)")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.pairs = 1.0, 3
    args.warmup = 1.0

    import tempfile
    with tempfile.TemporaryDirectory() as tmp, h.services() as started:
        sandbox = h.Service("sandbox", {}, "--listen", "127.0.0.1:0")
        started.append(sandbox)
        db_context = (
            _sqlite(tmp) if args.sqlite else h.postgres_database("bench_hot")
        )
        with db_context as url:
            env = h.broker_env(sandbox.origin, url)
            argv = None
            if args.profile:
                spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
                Path(args.profile).mkdir(parents=True, exist_ok=True)
                native = ["--native"] if args.native else []
                argv = [spy, "record", "-r", "250", "--format", "raw", *native, "-o",
                        str(Path(args.profile) / "broker-hot.txt"), "--",
                        sys.executable, "-m", "broker"]
            broker = h.Service("broker", env, argv=argv)
            started.append(broker)
            try:
                serving_pid = (child_pids(broker.pid) or [broker.pid])[0]
                report = asyncio.run(run(args, sandbox.origin, broker.address, serving_pid))
            finally:
                broker.stop()
                if args.profile:
                    print(broker.stderr, file=sys.stderr)
    ok = report.print()
    return 0 if ok else 1


class _sqlite:
    def __init__(self, tmp: str) -> None:
        self.url = f"sqlite:///{tmp}/bench.db"

    def __enter__(self) -> str:
        from broker.storage.tables import DATABASE
        DATABASE.migrate(self.url)
        return self.url

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
