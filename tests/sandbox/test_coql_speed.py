"""How long a COQL page of 2,000 takes over a module of many records (printed, not asserted:
timings on a shared machine prove nothing). Full scale:

    .venv/bin/python -m tests.sandbox.test_coql_speed 50000
"""

from __future__ import annotations

import sys
import time

from sandbox.crm.coql.engine import execute, parse
from tests.sandbox.coql_records import instant, leads

QUERIES = {
    "page by key (Modified_Time, id)": (
        "select Last_Name, Modified_Time from Leads where (Modified_Time >= "
        "'2026-12-01T05:00:00+05:30' and (Modified_Time > '2026-12-01T05:00:00+05:30' "
        "or id > '5725767000000400001')) order by Modified_Time, id limit 2000"
    ),
    "page by offset, text order": (
        "select Last_Name, Company from Leads where Annual_Revenue >= 100"
        " order by Company desc, Last_Name limit 2000 offset 4000"
    ),
    "no order (id)": "select id from Leads where Company like 'Acme%' limit 2000",
}


def measure(count: int, rounds: int = 5) -> dict[str, tuple[float, float]]:
    """Best milliseconds per query over `rounds`, with the records in id order as the store
    gives them (presorted by id), plus the key-paging page read in (Modified_Time, id) order
    as the handler reads it from the store's index."""
    records = leads(count, spread_seconds=1)
    by_store = sorted(records, key=lambda r: (instant(r["Modified_Time"]), int(r["id"])))
    out: dict[str, tuple[float, float]] = {}
    runs = [(name, text, records, ("id",)) for name, text in QUERIES.items()]
    runs.append(
        (
            "page by key, store order",
            QUERIES["page by key (Modified_Time, id)"],
            by_store,
            ("Modified_Time", "id"),
        )
    )
    for name, text, source, presorted in runs:
        query = parse(text)
        best_wall = best_cpu = float("inf")
        for _ in range(rounds):
            wall, cpu = time.perf_counter(), time.process_time()
            rows = execute(query, lambda _m, s=source: s, presorted_by=presorted)
            best_cpu = min(best_cpu, time.process_time() - cpu)
            best_wall = min(best_wall, time.perf_counter() - wall)
        assert rows, name
        # CPU time too: on a shared machine the wall clock also counts other processes.
        out[name] = (best_wall * 1000, best_cpu * 1000)
    return out


def test_a_page_of_2000_over_5000_records_prints_its_time():
    for name, (wall, cpu) in measure(5000, rounds=2).items():
        print(f"coql 5,000 records, {name}: {wall:.1f} ms ({cpu:.1f} ms CPU)")


if __name__ == "__main__":
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    for name, (wall, cpu) in measure(size).items():
        print(f"coql {size:,} records, {name}: {wall:.1f} ms ({cpu:.1f} ms CPU)")
