"""The records Zoho holds, per org: CRM modules and Desk tickets and contacts.

Reached from a handler as `state_of(request).records` (a `RecordStore`, on `SandboxState`
like `users` and `desk_orgs`; `reset()` empties it and the demo re-seeds it). A CRM org is
one sandbox user (each user has their own CRM org, as `/crm/v8/org` answers): its key is the
user's name, `crm_org_key(access.user)` from a request's token. A Desk org is keyed by its
org id.

CRM records are the JSON objects Get Records answers with: `id` a 19-digit string,
`Created_Time`/`Modified_Time` ISO-8601 with the org's offset at one-second precision on the
sandbox clock, `Owner`/`Created_By`/`Modified_By` as `{"id","name","email"}`, and the
module's ordinary fields. Desk records carry `id`, `createdTime`/`modifiedTime`
(`...T..:..:...000Z`), `isDeleted`, `isTrashed`, `subject`, `status`, `departmentId`, ...

No method awaits: each call leaves the store consistent on the one event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sandbox.clock import iso_millis_z
from sandbox.crm_page_tokens import PageTokens
from sandbox.record_set import Deleted, Record, RecordSet

FIRST_CRM_RECORD_ID = 5725767000010000001
FIRST_DESK_RECORD_ID = 1892000000100001
DESK_MODULES = ("tickets", "contacts")
DESK_DEPARTMENTS = ("1892000000006907", "1892000000082069")
TICKET_STATUSES = ("Open", "On Hold", "Escalated", "Closed")

# Ordinary fields of the modules the demo fills; others get Name/Description.
CRM_FIELDS: dict[str, tuple[str, ...]] = {
    "Leads": ("First_Name", "Last_Name", "Company", "Email", "Phone", "Lead_Status"),
    "Contacts": ("First_Name", "Last_Name", "Email", "Phone", "Title"),
    "Accounts": ("Account_Name", "Phone", "Website", "Industry"),
    "Deals": ("Deal_Name", "Stage", "Amount", "Closing_Date"),
}
# The field Zoho shows as a deleted record's display_name.
DISPLAY_FIELD = {
    "Leads": "Last_Name",
    "Contacts": "Last_Name",
    "Accounts": "Account_Name",
    "Deals": "Deal_Name",
    "Tasks": "Subject",
    "Events": "Event_Title",
    "Calls": "Subject",
    "Cases": "Subject",
    "Notes": "Note_Title",
}
STAGES = ("Qualification", "Needs Analysis", "Proposal", "Closed Won", "Closed Lost")
LEAD_STATUSES = ("Not Contacted", "Attempted to Contact", "Contacted", "Qualified")


class RecordError(ValueError):
    """A change the store cannot make (answered 400 by the control API)."""


def crm_org_key(user: Any) -> str:
    """The CRM org of a sandbox user (`User`): each user is their own org."""
    return str(user.user_id)


def person(user: Any) -> dict[str, str]:
    """A sandbox user as CRM's Owner/Created_By/Modified_By."""
    name = str(user.user_id).capitalize()
    return {"id": str(user.crm_user_id), "name": f"{name} User", "email": str(user.email)}


def crm_time(epoch: int, offset_minutes: int = 0) -> str:
    """`2024-06-11T14:20:00+05:30`: CRM's times, in the org's offset, to the second."""
    zone = UTC if not offset_minutes else timezone(timedelta(minutes=offset_minutes))
    return datetime.fromtimestamp(epoch, zone).isoformat()


def crm_values(module: str, n: int) -> dict[str, Any]:
    """Deterministic ordinary fields for the n-th generated record of `module`."""
    first, last = f"First{n}", f"Last{n}"
    if module == "Leads":
        return {
            "First_Name": first,
            "Last_Name": last,
            "Company": f"Company {n % 97}",
            "Email": f"lead{n}@example.com",
            "Phone": f"+1-555-{n % 10000:04d}",
            "Lead_Status": LEAD_STATUSES[n % len(LEAD_STATUSES)],
        }
    if module == "Contacts":
        return {
            "First_Name": first,
            "Last_Name": last,
            "Email": f"contact{n}@example.com",
            "Phone": f"+1-555-{n % 10000:04d}",
            "Title": ("CEO", "CTO", "Buyer")[n % 3],
        }
    if module == "Accounts":
        return {
            "Account_Name": f"Account {n}",
            "Phone": f"+1-555-{n % 10000:04d}",
            "Website": f"https://account{n}.example.com",
            "Industry": ("Retail", "Software", "Finance")[n % 3],
        }
    if module == "Deals":
        return {
            "Deal_Name": f"Deal {n}",
            "Stage": STAGES[n % len(STAGES)],
            "Amount": float(1000 + (n * 37) % 9000),
            "Closing_Date": f"2026-{1 + n % 12:02d}-{1 + n % 28:02d}",
        }
    return {DISPLAY_FIELD.get(module, "Name"): f"{module} {n}", "Description": f"Record {n}"}


@dataclass
class CrmOrgRecords:
    actor: dict[str, str]  # the org's user, as Owner/Created_By/Modified_By
    offset_minutes: int = 0
    modules: dict[str, RecordSet] = field(default_factory=dict)
    next_id: int = FIRST_CRM_RECORD_ID
    generated: int = 0  # records generated so far, for deterministic values

    def module(self, name: str) -> RecordSet:
        records = self.modules.get(name)
        if records is None:
            records = self.modules[name] = RecordSet()
        return records

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def build(
        self, module: str, record_id: int, at: int, values: Mapping[str, Any], base: Record | None
    ) -> Record:
        """The record after a create (base None) or an edit at `at` with `values`."""
        stamp = crm_time(at, self.offset_minutes)
        if base is None:
            self.generated += 1
            data: dict[str, Any] = {"id": str(record_id), "Owner": self.actor}
            data.update(crm_values(module, self.generated))
            data.update({"Created_Time": stamp, "Created_By": self.actor})
            created = at
        else:
            data, created = dict(base.data), base.created
        data.update(values)
        data["Modified_Time"] = stamp
        data["Modified_By"] = self.actor
        data["id"] = str(record_id)
        return Record(record_id, created, at, data)


@dataclass
class DeskOrgRecords:
    modules: dict[str, RecordSet] = field(
        default_factory=lambda: {m: RecordSet() for m in DESK_MODULES}
    )
    generated: int = 0

    def build(
        self,
        module: str,
        record_id: int,
        at_ms: int,
        values: Mapping[str, Any],
        base: Record | None,
    ) -> Record:
        stamp = iso_millis_z(at_ms / 1000)
        if base is None:
            self.generated += 1
            data = desk_values(module, self.generated, record_id)
            data["createdTime"] = stamp
            created = at_ms
        else:
            data, created = dict(base.data), base.created
        data.update(values)
        data["modifiedTime"] = stamp
        data["id"] = str(record_id)
        return Record(record_id, created, at_ms, data)


def desk_values(module: str, n: int, record_id: int) -> dict[str, Any]:
    if module == "tickets":
        return {
            "id": str(record_id),
            "ticketNumber": str(100 + n),
            "subject": f"Ticket {n}",
            "status": TICKET_STATUSES[n % len(TICKET_STATUSES)],
            "statusType": "Open",
            "departmentId": DESK_DEPARTMENTS[n % 2],
            "contactId": None,
            "email": f"customer{n}@example.com",
            "channel": "Email",
            "priority": "Medium",
            "isDeleted": False,
            "isTrashed": False,
            "isArchived": False,
        }
    return {
        "id": str(record_id),
        "firstName": f"First{n}",
        "lastName": f"Last{n}",
        "email": f"contact{n}@example.com",
        "phone": f"+1-555-{n % 10000:04d}",
        "isDeleted": False,
        "isTrashed": False,
    }


class RecordStore:
    def __init__(self) -> None:
        self.crm: dict[str, CrmOrgRecords] = {}
        self.desk: dict[str, DeskOrgRecords] = {}
        self._desk_next_id = FIRST_DESK_RECORD_ID
        self.page_tokens = PageTokens()
        # Seeds not yet made, by ("crm", user) / ("desk", org id): the demo's records are
        # generated on first use, so the many tests that never read records do not pay for
        # them on every reset.
        self._pending: dict[tuple[str, str], Callable[[], None]] = {}

    def seed_later(self, app: str, key: str, seed: Callable[[], None]) -> None:
        self._pending[(app, key)] = seed

    def _seed(self, app: str, key: str) -> None:
        seed = self._pending.pop((app, key), None)
        if seed is not None:
            seed()

    def clear(self) -> None:
        self.crm.clear()
        self.desk.clear()
        self._pending.clear()
        self.page_tokens.clear()
        self._desk_next_id = FIRST_DESK_RECORD_ID

    # ---- orgs ------------------------------------------------------------------------

    def crm_org(self, user: Any) -> CrmOrgRecords:
        key = crm_org_key(user)
        org = self.crm.get(key)
        if org is None:
            org = self.crm[key] = CrmOrgRecords(actor=person(user))
            self._seed("crm", key)
        return org

    def desk_org(self, org_id: str) -> DeskOrgRecords:
        org = self.desk.get(org_id)
        if org is None:
            org = self.desk[org_id] = DeskOrgRecords()
            self._seed("desk", org_id)
        return org

    def new_desk_id(self) -> int:
        self._desk_next_id += 1
        return self._desk_next_id - 1

    # ---- reads for other modules (COQL) ----------------------------------------------

    def crm_records(self, org_key: str, module: str) -> list[dict[str, Any]]:
        """The live (not deleted) records of a CRM module, as Get Records shows them, in id
        order; [] for an org or module without records. The dicts are the store's own:
        read them, never change them."""
        if ("crm", org_key) in self._pending:
            self._seed("crm", org_key)
        org = self.crm.get(org_key)
        if org is None or module not in org.modules:
            return []
        return org.modules[module].records()

    # ---- changes -----------------------------------------------------------------------

    def crm_change(
        self,
        user: Any,
        module: str,
        operation: str,
        records: list[dict[str, Any]],
        at: int,
        *,
        permanent: bool = False,
    ) -> list[dict[str, Any]]:
        """Apply one change; answers the records as `{"id", "values"}` for the callbacks
        (ids filled in for creates without one)."""
        org = self.crm_org(user)
        return _apply(
            org.module(module),
            records,
            operation,
            at,
            permanent,
            org.new_id,
            lambda rid, vals, base: org.build(module, rid, at, vals, base),
        )

    def desk_change(
        self,
        org_id: str,
        module: str,
        operation: str,
        records: list[dict[str, Any]],
        at_ms: int,
        *,
        permanent: bool = False,
    ) -> list[dict[str, Any]]:
        org = self.desk_org(org_id)
        if module not in org.modules:
            raise RecordError(f"Desk records are kept for {DESK_MODULES}, not {module!r}")

        def build(rid: int, vals: Mapping[str, Any], base: Record | None) -> Record:
            return org.build(module, rid, at_ms, vals, base)

        held = org.modules[module]
        applied = _apply(held, records, operation, at_ms, permanent, self.new_desk_id, build)
        if operation == "delete":
            # Desk's delete moves to the trash: the ticket keeps its data, now isTrashed.
            flag = "isDeleted" if permanent else "isTrashed"
            for change in applied:
                entry = held.deleted[int(change["id"])]
                entry.data = {**entry.data, flag: True}
        return applied


def record_id_of(raw: Any) -> int:
    text = str(raw)
    if not text.isdigit():
        raise RecordError(f"record id {text!r} is not a number")
    return int(text)


def _apply(
    records: RecordSet,
    changes: list[dict[str, Any]],
    operation: str,
    at: int,
    permanent: bool,
    new_id: Any,
    build: Any,
) -> list[dict[str, Any]]:
    applied: list[dict[str, Any]] = []
    made: list[Record] = []
    for change in changes:
        raw = change.get("id")
        record_id = new_id() if raw is None and operation == "insert" else record_id_of(raw)
        values = dict(change.get("values") or {})
        if operation == "delete":
            records.delete(record_id, at=at, permanent=permanent)
        else:
            # An update of an id the store never had creates it, so that callbacks naming
            # made-up ids (as older tests do) still agree with the records.
            base = None if operation == "insert" else records.live.get(record_id)
            made.append(build(record_id, values, base))
        applied.append({**change, "id": str(record_id), "values": values})
    if made:
        records.put_many(made)
    return applied


def deleted_entries(records: RecordSet) -> list[Deleted]:
    """Recycle-bin entries newest first, then permanent ones newest first: the order of
    getDeletedRecords' example."""
    entries = list(records.deleted.values())
    entries.sort(key=lambda e: (e.permanent, -e.at, -e.id))
    return entries
