"""One module's records (a CRM module, Desk tickets or contacts), indexed for Zoho's reads.

Every record is kept once, as the JSON object the read APIs answer with (`data`), beside its
numeric id and created/modified times. Three sorted key lists, `(value, id)` ascending, give
the orders the read APIs offer (id, created, modified): a page is a bisect and a slice, never
a scan, so the capture benchmark's tens of thousands of reads do not make the sandbox its
bottleneck. A filtered order (If-Modified-Since with another sort) is built once per change
of the set (`version`) and cached.

Single changes keep the lists sorted with bisect; a bulk change of many records re-sorts once.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

Key = tuple[int, int]
SORTS = ("id", "created", "modified")
# Above this many records in one batch, re-sorting the lists beats inserting one by one.
RESORT_ABOVE = 512
MAX_CACHED_VIEWS = 64


@dataclass(slots=True)
class Record:
    id: int
    created: int  # CRM: epoch seconds; Desk: epoch milliseconds
    modified: int
    data: dict[str, Any]  # the record as the read APIs answer it (id as a string)


@dataclass(slots=True)
class Deleted:
    id: int
    at: int  # when deleted, in the set's time unit
    permanent: bool
    data: dict[str, Any]  # the last state, for display names and who created it


def _key(record: Record, sort: str) -> Key:
    if sort == "modified":
        return (record.modified, record.id)
    if sort == "created":
        return (record.created, record.id)
    return (record.id, record.id)


class RecordSet:
    def __init__(self) -> None:
        self.live: dict[int, Record] = {}
        self._index: dict[str, list[Key]] = {sort: [] for sort in SORTS}
        # id -> entry, in deletion order (a re-deletion moves an entry to the end).
        self.deleted: dict[int, Deleted] = {}
        self.version = 0
        self._views: dict[tuple[str, int], list[Key]] = {}
        self._deferred = False  # inside bulk(): the key lists are rebuilt at its end

    def __len__(self) -> int:
        return len(self.live)

    # ---- writes ----------------------------------------------------------------------

    def put(self, record: Record) -> None:
        """Insert or replace `record` (by id); a deleted id comes back to life."""
        self.put_many((record,))

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Many puts and deletes, the key lists re-sorted once at the end."""
        self._deferred = True
        try:
            yield
        finally:
            self._deferred = False
            self._rebuild()
            self._changed()

    def put_many(self, records: Iterable[Record]) -> None:
        batch = list(records)
        bulk = self._deferred or len(batch) > RESORT_ABOVE
        for record in batch:
            old = self.live.get(record.id)
            self.deleted.pop(record.id, None)
            if not bulk:
                if old is not None:
                    self._unindex(old)
                for sort in SORTS:
                    insort(self._index[sort], _key(record, sort))
            self.live[record.id] = record
        if bulk and not self._deferred:
            self._rebuild()
        self._changed()

    def delete(self, record_id: int, *, at: int, permanent: bool) -> Deleted:
        """Move a record to the recycle bin or delete it permanently. An unknown id (or one
        already in the bin) is still recorded: Zoho lists what was deleted, not what it had."""
        record = self.live.pop(record_id, None)
        if record is not None and not self._deferred:
            self._unindex(record)
        previous = self.deleted.pop(record_id, None)
        data = record.data if record is not None else (previous.data if previous else {})
        entry = Deleted(record_id, at, permanent, data)
        self.deleted[record_id] = entry
        self._changed()
        return entry

    def clear(self) -> None:
        self.live.clear()
        self.deleted.clear()
        for keys in self._index.values():
            keys.clear()
        self._changed()

    def _unindex(self, record: Record) -> None:
        for sort in SORTS:
            keys = self._index[sort]
            key = _key(record, sort)
            at = bisect_left(keys, key)
            if at < len(keys) and keys[at] == key:
                del keys[at]

    def _rebuild(self) -> None:
        for sort in SORTS:
            self._index[sort] = sorted(_key(r, sort) for r in self.live.values())

    def _changed(self) -> None:
        self.version += 1
        self._views.clear()

    # ---- reads -----------------------------------------------------------------------

    def view(self, sort: str, since: int | None = None) -> list[Key]:
        """Keys in ascending `sort` order, of records modified at or after `since` (all when
        None). The list is shared: never change it."""
        keys = self._index[sort]
        if since is None:
            return keys
        cached = self._views.get((sort, since))
        if cached is not None:
            return cached
        modified = self._index["modified"]
        recent = modified[bisect_left(modified, (since, -1)) :]
        if sort == "modified":
            view = recent
        else:
            records = self.live
            view = sorted(_key(records[record_id], sort) for _, record_id in recent)
        if len(self._views) >= MAX_CACHED_VIEWS:
            self._views.clear()
        self._views[(sort, since)] = view
        return view

    def records(self) -> list[dict[str, Any]]:
        """Every live record's data, in id order."""
        live = self.live
        return [live[record_id].data for record_id, _ in self._index["id"]]
