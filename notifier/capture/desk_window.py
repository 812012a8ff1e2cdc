"""One Desk resource's window [start, until) read back through search, sorted by
modifiedTime ascending. Search reaches `from` 999 at most (about 1,100 results a range),
so a window is cut into slices as it is read: when a slice's last reachable page is
full, the next slice starts at the last modifiedTime read (inclusive; what is read twice
has the same dedupe key), and the watermark moves there.

Deletes: Desk lists no recycle bin. A record search still returns with `isDeleted` or
`isTrashed` set is recovered as a delete; one that search no longer returns cannot be
seen by a read (docs/zoho.md, "Change capture": what Desk cannot show)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from notifier.broker_client import BrokerToken
from notifier.capture.crm_reads import parse_time
from notifier.capture.crm_window import Run, Window
from notifier.capture.desk_reads import MAX_FROM, SEARCH_LIMIT, DeskReads, SearchPage
from notifier.capture.found import Found, kinds_of
from notifier.events.dedupe import DELETED
from servicekit.errors import ZohoBadResponse


def _gone(row: dict[str, Any]) -> bool:
    return any(row.get(flag) in (True, "true") for flag in ("isDeleted", "isTrashed"))


def _found(window: Window, rows: list[dict[str, Any]]) -> list[Found]:
    found = []
    for row in rows:
        record_id = row.get("id")
        modified = parse_time(row.get("modifiedTime"))
        if modified is None or not isinstance(record_id, str | int) or isinstance(record_id, bool):
            window.malformed("a Desk record without id or modifiedTime")
            continue
        if not window.start <= modified < window.until:
            continue
        if _gone(row):
            if DELETED in window.heard:
                found.append(Found(str(record_id), DELETED, modified))
            continue
        created = parse_time(row.get("createdTime"))
        # Desk callbacks carry the whole record: so do its recovered events.
        for kind in kinds_of(window.heard, created, modified, window.creations_since):
            found.append(Found(str(record_id), kind, modified, row))
    return found


async def read_resource(
    run: Run[SearchPage], reads: DeskReads, window: Window, origin: str, org_id: str,
    resource: str,
) -> None:
    since = window.start
    while True:
        rows: list[dict[str, Any]] = []
        position = 0
        while True:
            await window.spend(1)

            async def call(
                grant: BrokerToken, since: datetime = since, position: int = position
            ) -> SearchPage:
                return await reads.search(
                    grant, origin, org_id, resource, since=since, until=window.until,
                    start=position, deadline=window.deadline,
                )

            page = await run(call)
            rows.extend(page.rows)
            if not page.full:
                await window.save(_found(window, rows), window.until)
                return
            position += SEARCH_LIMIT
            if position > MAX_FROM:
                break
        # The slice holds more than search reaches: the next starts at the last time read.
        last = parse_time(rows[-1].get("modifiedTime"))
        if last is None or last <= since:
            raise ZohoBadResponse(
                f"Desk search: over {MAX_FROM + 1} {resource} records modified at one instant",
                endpoint="desk.search",
            )
        await window.save(_found(window, rows), last)
        since = last
