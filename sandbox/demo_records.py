"""The demo tenant's records: a few hundred per CRM module and of Desk tickets and contacts.

Ids and values are deterministic; times are spread over the hours before the sandbox clock's
now at seeding (one record every RECORD_SPACING_SECONDS, the newest a minute before; every
fourth edited two hours after its creation), so If-Modified-Since reads have something to
cut and modified order differs from id order. The records are made on first use of the org
(`RecordStore.seed_later`): resets stay cheap for tests that never read records.
"""

from __future__ import annotations

from typing import Any

from sandbox.records import DESK_MODULES, RecordStore, crm_org_key

DEMO_RECORD_MODULES = ("Leads", "Contacts", "Accounts", "Deals")
DEFAULT_DEMO_RECORDS = 300
RECORD_SPACING_SECONDS = 60
EDIT_DELAY_SECONDS = 7200


def seed_records(
    store: RecordStore, user: Any, desk_org_id: str | None, count: int, now: float
) -> None:
    if count <= 0:
        return
    start = int(now) - 60 - count * RECORD_SPACING_SECONDS

    def crm() -> None:
        org = store.crm_org(user)
        for module in DEMO_RECORD_MODULES:
            records = org.module(module)
            with records.bulk():
                for i in range(count):
                    at = start + i * RECORD_SPACING_SECONDS
                    record = org.build(module, org.new_id(), at, {}, None)
                    if i % 4 == 0:
                        edited = min(at + EDIT_DELAY_SECONDS, int(now) - 1)
                        record = org.build(module, record.id, edited, {}, record)
                    records.put(record)

    def desk() -> None:
        assert desk_org_id is not None
        org = store.desk_org(desk_org_id)
        for module in DESK_MODULES:
            records = org.modules[module]
            with records.bulk():
                for i in range(count):
                    at_ms = (start + i * RECORD_SPACING_SECONDS) * 1000
                    records.put(org.build(module, store.new_desk_id(), at_ms, {}, None))

    store.seed_later("crm", crm_org_key(user), crm)
    if desk_org_id is not None:
        store.seed_later("desk", desk_org_id, desk)
