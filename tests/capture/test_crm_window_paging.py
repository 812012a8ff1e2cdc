"""One CRM window's paging against answers the sandbox does not give: Zoho's answers are
scripted page by page, and what the window saved is checked. Whatever Zoho answers, the
watermark never moves past what was read (SPEC, Subscription.covered_until): a read that
cannot go on fails, to be announced as a gap and retried, rather than covering the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from notifier.capture import crm_window
from notifier.capture.crm_reads import Batch
from notifier.capture.found import Found
from notifier.events.dedupe import CREATED, DELETED, EDITED
from servicekit.deadline import Deadline
from servicekit.errors import ZohoBadResponse

START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
UNTIL = START + timedelta(minutes=15)


def zoho_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def record(number: int, *, modified: datetime | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"id": str(5725767000000000000 + number)}
    if modified is not None:
        row["Modified_Time"] = zoho_time(modified)
        row["Created_Time"] = zoho_time(START - timedelta(days=1))
    return row


class ScriptedReads:
    """Zoho's answers, one Batch per call, in order; what was asked is kept."""

    def __init__(self, deleted: list[Batch] | None = None, pages: list[Batch] | None = None):
        self._deleted = list(deleted or [])
        self._pages = list(pages or [])
        self.asked: list[str] = []

    async def deleted(self, grant: Any, module: str, **_: Any) -> Batch:
        self.asked.append("deleted")
        return self._deleted.pop(0)

    async def coql(self, grant: Any, module: str, fields: Any, **_: Any) -> Batch:
        self.asked.append("coql")
        return self._pages.pop(0)

    async def records(self, grant: Any, module: str, fields: Any, **_: Any) -> Batch:
        self.asked.append("records")
        return self._pages.pop(0)


class RecordingWindow:
    def __init__(self, heard: set[str]) -> None:
        self.start, self.until, self.heard = START, UNTIL, heard
        self.creations_since = START - timedelta(days=2)
        self.deadline = Deadline(30)
        self.saved: list[tuple[list[Found], datetime | None]] = []
        self.spent = 0

    async def spend(self, credits: int) -> None:
        self.spent += credits

    async def save(self, found: list[Found], covered: datetime | None) -> None:
        self.saved.append((found, covered))

    async def remaining(self, credits: int | None) -> None:
        pass

    def malformed(self, what: str) -> None:
        pass

    @property
    def covered(self) -> datetime | None:
        """The furthest the watermark was moved."""
        moved = [covered for _, covered in self.saved if covered is not None]
        return max(moved) if moved else None


async def run(call: Any) -> Any:
    return await call(object())


async def read(reads: ScriptedReads, window: RecordingWindow, *, coql: bool) -> None:
    await crm_window.read_module(run, reads, window, "Leads", ["id", "Modified_Time"],  # type: ignore[arg-type]
                                 coql=coql)


def deleted_page(first: int, count: int, *, more: bool) -> Batch:
    at = zoho_time(START + timedelta(minutes=1))
    rows = [{"id": str(first + i), "deleted_time": at} for i in range(count)]
    return Batch(rows, more, None)


async def test_deleted_records_past_the_page_cap_fail_the_read_instead_of_being_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(crm_window, "MAX_DELETED_PAGES", 2)
    reads = ScriptedReads(deleted=[deleted_page(1, 2, more=True), deleted_page(3, 2, more=True)])
    window = RecordingWindow({DELETED, EDITED})
    with pytest.raises(ZohoBadResponse) as caught:
        await read(reads, window, coql=True)
    assert "more deleted records than 2 pages" in str(caught.value)
    # The deletes read are kept (ids only), the watermark is not moved, and the records
    # are not read: the window is read again once it can be.
    assert [f.record_id for found, _ in window.saved for f in found] == ["1", "2", "3", "4"]
    assert window.covered is None
    assert reads.asked == ["deleted", "deleted"]


async def test_deleted_records_within_the_cap_then_the_records_cover_the_window() -> None:
    reads = ScriptedReads(
        deleted=[deleted_page(1, 2, more=True), deleted_page(3, 1, more=False)],
        pages=[Batch([record(1, modified=START + timedelta(minutes=2))], False, None)],
    )
    window = RecordingWindow({DELETED, EDITED})
    await read(reads, window, coql=True)
    assert reads.asked == ["deleted", "deleted", "coql"]
    assert window.covered == UNTIL
    kinds = [f.kind for found, _ in window.saved for f in found]
    assert kinds == [DELETED, DELETED, DELETED, EDITED]


@pytest.mark.parametrize("coql", [True, False], ids=["coql", "get-records"])
async def test_an_unkeyed_page_with_more_to_come_fails_the_read(coql: bool) -> None:
    middle = START + timedelta(minutes=5)
    reads = ScriptedReads(pages=[
        Batch([record(1, modified=middle)], True, None),
        # Rows Zoho sent without Modified_Time, and more_records still true.
        Batch([record(2), record(3)], True, None),
    ])
    window = RecordingWindow({CREATED, EDITED})
    with pytest.raises(ZohoBadResponse):
        await read(reads, window, coql=coql)
    # Covered up to the last second wholly read, never to the end of the window.
    assert window.covered == middle
    assert len(reads.asked) == 2


@pytest.mark.parametrize("coql", [True, False], ids=["coql", "get-records"])
async def test_an_unkeyed_last_page_still_covers_the_window(coql: bool) -> None:
    reads = ScriptedReads(pages=[Batch([record(2)], False, None)])
    window = RecordingWindow({CREATED, EDITED})
    await read(reads, window, coql=coql)
    assert window.covered == UNTIL
