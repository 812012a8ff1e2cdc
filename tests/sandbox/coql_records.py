"""Records shaped as the sandbox's store holds them (API names, ISO datetimes with an offset,
19-digit string ids, Owner as {"id","name","email"}), for the COQL tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

FIRST_ID = 5725767000000400001
IST = timezone(timedelta(hours=5, minutes=30))
BASE = datetime(2026, 12, 1, tzinfo=UTC)
OWNERS = [
    {"id": "5725767000000211001", "name": "Demo User", "email": "demo@sandbox.example"},
    {"id": "5725767000000211002", "name": "Other User", "email": "other@sandbox.example"},
]
COMPANIES = ["Acme", "Zylker", "Acme Corp", "Globex", None]


def record(i: int, *, spread_seconds: int = 97) -> dict[str, Any]:
    """The i-th lead: times alternate between UTC and +05:30 so comparing them as text would
    give the wrong order."""
    modified = BASE + timedelta(seconds=(i * spread_seconds) % 86_400)
    zone = IST if i % 2 else UTC
    created = BASE - timedelta(days=1, seconds=i)
    return {
        "id": str(FIRST_ID + i),
        "Last_Name": f"Lead {i % 13}",
        "First_Name": None if i % 5 == 0 else f"F{i % 3}",
        "Company": COMPANIES[i % len(COMPANIES)],
        "Annual_Revenue": float((i * 37) % 1000),
        "Email_Opt_Out": i % 4 == 0,
        "Closing_Date": f"2026-12-{1 + i % 28:02d}",
        "Created_Time": created.astimezone(zone).isoformat(timespec="seconds"),
        "Modified_Time": modified.astimezone(zone).isoformat(timespec="seconds"),
        "Owner": OWNERS[i % 2],
        "Created_By": OWNERS[0],
        "Modified_By": OWNERS[i % 2],
    }


def leads(count: int, **kwargs: Any) -> list[dict[str, Any]]:
    return [record(i, **kwargs) for i in range(count)]


def instant(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
