"""One CRM module's window [start, until) read back: deleted records first (ids only),
then the records modified in it, a page at a time, each page saved with the watermark
moved to the last second wholly read.

COQL (about 667 records a credit at LIMIT 2,000) is used where the grant may run it;
otherwise Get Records (200 a credit) with If-Modified-Since, sorted by Modified_Time,
resumed from the last key when its page token expires or the 100,000-record reach ends.
Both are keyed on (Modified_Time, id), never on offsets."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from notifier.broker_client import BrokerToken
from notifier.capture.crm_reads import COQL_MAX_ROWS, Batch, CrmReads, coql_credits, parse_time
from notifier.capture.found import Found, kinds_of
from notifier.events.dedupe import DELETED
from servicekit.deadline import Deadline
from servicekit.errors import ZohoBadResponse, ZohoRejected

log = logging.getLogger(__name__)
T = TypeVar("T")
Run = Callable[[Callable[[BrokerToken], Awaitable[T]]], Awaitable[T]]
FIRST_COQL_LIMIT = 200  # 1 credit: most sweeps find a handful of changes
# Zoho's answers when a Get Records page token can no longer be used: start again from
# the last key read.
RESTART_CODES = frozenset(
    {"EXPIRED_VALUE", "TOKEN_BOUND_DATA_MISMATCH", "PAGINATION_LIMIT_EXCEEDED"}
)
# Deleted records have pages and no page token: 1,000 pages (200,000 deletes, as many
# credits as the budget allows) guard against a list that never ends. More than that in
# one window is a failed read, never a silent cut (SPEC: the watermark never runs ahead of
# what was read).
MAX_DELETED_PAGES = 1000


class Window(Protocol):
    """What the service gives a read: its bounds, the budget, and where pages go."""

    start: datetime
    until: datetime
    heard: set[str]
    creations_since: datetime
    deadline: Deadline

    async def spend(self, credits: int) -> None: ...

    async def save(self, found: list[Found], covered: datetime | None) -> None: ...

    async def remaining(self, credits: int | None) -> None: ...

    def malformed(self, what: str) -> None: ...


async def read_module(
    run: Run[Batch], reads: CrmReads, window: Window, module: str, fields: Sequence[str],
    *, coql: bool,
) -> None:
    if DELETED in window.heard:
        await _deleted(run, reads, window, module)
    if window.heard - {DELETED}:
        if coql:
            await _by_coql(run, reads, window, module, fields)
        else:
            await _by_records(run, reads, window, module, fields)
    else:
        await window.save([], window.until)


async def _deleted(run: Run[Batch], reads: CrmReads, window: Window, module: str) -> None:
    found = []
    for page in range(1, MAX_DELETED_PAGES + 1):
        await window.spend(1)

        async def call(grant: BrokerToken, page: int = page) -> Batch:
            return await reads.deleted(
                grant, module, since=window.start, page=page, deadline=window.deadline
            )

        batch = await run(call)
        await window.remaining(batch.remaining)
        for row in batch.rows:
            at = parse_time(row.get("deleted_time"))
            record_id = row.get("id")
            if at is None or not isinstance(record_id, str | int):
                window.malformed("a deleted record without id or deleted_time")
                continue
            if window.start <= at < window.until:
                found.append(Found(str(record_id), DELETED, at))
        if not batch.more:
            break
    # Ids only; the watermark moves with the records read next.
    await window.save(found, None)
    if batch.more:
        raise ZohoBadResponse(
            f"{module}: more deleted records than {MAX_DELETED_PAGES} pages since "
            f"{window.start.isoformat()}",
            endpoint="crm.deleted",
        )


def _found(window: Window, rows: list[dict[str, Any]], values: bool) -> list[Found]:
    found = []
    for row in rows:
        record_id = row.get("id")
        modified = parse_time(row.get("Modified_Time"))
        if modified is None or not isinstance(record_id, str | int) or isinstance(record_id, bool):
            window.malformed("a record without id or Modified_Time")
            continue
        if not window.start <= modified < window.until:
            continue
        created = parse_time(row.get("Created_Time"))
        for kind in kinds_of(window.heard, created, modified, window.creations_since):
            found.append(Found(str(record_id), kind, modified, row if values else None))
    return found


async def _by_coql(
    run: Run[Batch], reads: CrmReads, window: Window, module: str, fields: Sequence[str]
) -> None:
    since, limit = window.start, FIRST_COQL_LIMIT
    after_id: str | None = None
    values = len(fields) > 3
    while True:
        await window.spend(coql_credits(limit))

        async def call(
            grant: BrokerToken, since: datetime = since, after_id: str | None = after_id,
            limit: int = limit,
        ) -> Batch:
            return await reads.coql(
                grant, module, fields, since=since, until=window.until, after_id=after_id,
                limit=limit, deadline=window.deadline,
            )

        batch = await run(call)
        await window.remaining(batch.remaining)
        rows = batch.rows
        keyed = [
            (t, str(r.get("id"))) for r in rows
            if (t := parse_time(r.get("Modified_Time"))) is not None and str(r.get("id")).isdigit()
        ]
        if not batch.more:
            await window.save(_found(window, rows, values), window.until)
            return
        if not keyed:
            # More pages, and nothing on this one to continue after: stopping here would
            # cover the window without reading the rest.
            raise ZohoBadResponse(
                f"{module}: a page of records without Modified_Time or id, and more to come",
                endpoint="crm.coql",
            )
        # Every second before the last row's is wholly read; that second may hold more.
        since, after_id = keyed[-1]
        await window.save(_found(window, rows, values), since)
        limit = COQL_MAX_ROWS


async def _by_records(
    run: Run[Batch], reads: CrmReads, window: Window, module: str, fields: Sequence[str]
) -> None:
    since = window.start
    token: str | None = None
    values = len(fields) > 3
    while True:
        await window.spend(1)

        async def call(
            grant: BrokerToken, since: datetime = since, token: str | None = token
        ) -> Batch:
            return await reads.records(
                grant, module, fields, since=since, page_token=token, deadline=window.deadline
            )

        try:
            batch = await run(call)
        except ZohoRejected as refused:
            if token is None or refused.zoho_code not in RESTART_CODES:
                raise
            log.info("%s: page token unusable (%s); resuming from %s", module,
                     refused.zoho_code, since.isoformat())
            token = None
            continue
        await window.remaining(batch.remaining)
        times = [parse_time(r.get("Modified_Time")) for r in batch.rows]
        seen = [t for t in times if t is not None]
        past_end = any(t >= window.until for t in seen)
        if past_end or not batch.more:
            await window.save(_found(window, batch.rows, values), window.until)
            return
        if not seen:
            # As for COQL: the window is not covered by the pages not read.
            raise ZohoBadResponse(
                f"{module}: a page of records without Modified_Time, and more to come",
                endpoint="crm.records",
            )
        # Rows come oldest first: every second before the last row's is wholly read.
        moved = seen[-1] > since
        since = max(since, seen[-1])
        await window.save(_found(window, batch.rows, values), since)
        token = batch.next_page_token
        if token is None and not moved:
            # If-Modified-Since is the only key left, and a whole page shares one second.
            raise ZohoBadResponse(
                f"{module}: a page of records modified in one second and no page token",
                endpoint="crm.records",
            )
