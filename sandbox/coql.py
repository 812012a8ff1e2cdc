"""COQL as the sandbox answers it: `parse(text)` (coql_syntax) and `execute(query, records_of)`.

Pure: no aiohttp. `records_of(module)` gives a module's live records as dicts keyed by API
names (KeyError: no such module). Field types come from the system fields Zoho always has and
from the records' values: datetimes are ISO-8601 strings with an offset and compare as
instants, ids compare as numbers, lookups (`Owner`) compare by their `id`.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from sandbox.coql_syntax import (
    Condition,
    CoqlError,
    CoqlQuery,
    Criterion,
    Field,
    OrderKey,
    parse,
)

__all__ = ["CoqlError", "CoqlQuery", "answer", "credits_for", "describe", "execute", "parse"]

Record = Mapping[str, Any]
RecordsOf = Callable[[str], Iterable[Record]]
Predicate = Callable[[Record], bool]

SYSTEM_TYPES = {
    "id": "id",
    "Created_Time": "datetime",
    "Modified_Time": "datetime",
    "Owner": "lookup",
    "Created_By": "lookup",
    "Modified_By": "lookup",
}
ORDERED = frozenset({"=", "!=", "<", "<=", ">", ">=", "between", "in", "not in"})
OPERATORS = {
    "text": frozenset({"=", "!=", "like", "not like", "in", "not in"}),
    "id": ORDERED,
    "datetime": ORDERED,
    "date": ORDERED,
    "number": ORDERED,
    "boolean": frozenset({"=", "!="}),
    "lookup": frozenset({"=", "!=", "in", "not in"}),
}
NULL_TESTS = frozenset({"is null", "is not null"})
SCHEMA_SAMPLE = 500  # records read to learn a module's field names
META = {  # data_type and json_type of include_meta's `fields`, as Zoho's field metadata names them
    "text": ("text", "string"),
    "id": ("bigint", "string"),
    "datetime": ("datetime", "string"),
    "date": ("date", "string"),
    "number": ("double", "double"),
    "boolean": ("boolean", "boolean"),
    "lookup": ("lookup", "jsonobject"),
}


def credits_for(query: CoqlQuery) -> int:
    """Zoho's COQL credits by LIMIT: 1 up to 200, 2 up to 1,000, 3 up to 2,000."""
    if query.limit <= 200:
        return 1
    return 2 if query.limit <= 1000 else 3


@lru_cache(maxsize=1 << 18)
def _instant(text: str) -> float | None:
    """Epoch seconds of an ISO-8601 date-time with an offset; cached because the same record's
    Modified_Time is read by every query that filters or sorts on it."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return None if moment.tzinfo is None else moment.timestamp()


def _type_of(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, Mapping):
        return "lookup" if "id" in value else "text"
    if isinstance(value, str) and len(value) >= 19 and value[10:11] == "T":
        return "datetime" if _instant(value) is not None else "text"
    if isinstance(value, str) and len(value) == 10 and value[4:5] == "-":
        try:
            date.fromisoformat(value)
            return "date"
        except ValueError:
            return "text"
    return "text"


class _Schema:
    """A module's field names (system fields plus those its records carry) and their types."""

    def __init__(self, records: Sequence[Record]) -> None:
        self.records = records
        self.names: set[str] = set(SYSTEM_TYPES)
        for record in records[:SCHEMA_SAMPLE]:
            self.names.update(record)
        self.types: dict[str, str] = dict(SYSTEM_TYPES)

    def type_of(self, field: Field, clause: str) -> str:
        head = field.path[0]
        if head not in self.names:
            raise _invalid_column(field, clause)
        kind = self.types.get(head)
        if kind is None:
            kind = next(
                (t for t in (_type_of(r.get(head)) for r in self.records) if t is not None), "text"
            )
            self.types[head] = kind
        if len(field.path) == 1:
            return kind
        if kind != "lookup":
            raise _invalid_column(field, clause)
        return "id" if field.path[1] == "id" else "text"


def _invalid_column(field: Field, clause: str) -> CoqlError:
    return CoqlError(
        "INVALID_QUERY",
        "column given seems to be invalid",
        {"column_name": field.name, "clause": clause},
    )


def _getter(field: Field) -> Callable[[Record], Any]:
    if len(field.path) == 1:
        name = field.path[0]
        return lambda r: r.get(name)
    head, prop = field.path

    def get(record: Record) -> Any:
        value = record.get(head)
        return value.get(prop) if isinstance(value, Mapping) else None

    return get


def _as_int(value: Any) -> int | None:
    if isinstance(value, Mapping):
        value = value.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _as_instant(value: Any) -> float | None:
    return _instant(value) if isinstance(value, str) else None


def _as_date(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        return None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _as_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


# How a record's value and a literal become comparable, per field type (None: null/unusable).
KEYS: dict[str, Callable[[Any], Any]] = {
    "id": _as_int,
    "lookup": _as_int,
    "datetime": _as_instant,
    "date": _as_date,
    "number": _as_number,
    "boolean": _as_bool,
    "text": _as_text,
}


def _is_null(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _like(pattern: str) -> Callable[[str], bool]:
    # `%` is Zoho's only wildcard (starts with, ends with, contains); everything else is literal.
    regex = re.compile(".*".join(re.escape(part) for part in pattern.split("%")), re.DOTALL)
    return lambda text: regex.fullmatch(text) is not None


def _criterion(c: Criterion, schema: _Schema) -> Predicate:
    kind = schema.type_of(c.field, "where")
    get = _getter(c.field)
    if c.operator in NULL_TESTS:
        if c.operator == "is null":
            return lambda r: _is_null(get(r))
        return lambda r: not _is_null(get(r))
    if c.operator not in OPERATORS[kind]:
        raise CoqlError(
            "INVALID_QUERY",
            "Invalid query formed",
            {
                "reason": "invalid operator found",
                "column_name": c.field.name,
                "operator": c.operator,
            },
        )
    key = KEYS[kind]
    literals = []
    for raw in c.values:
        value = key(raw)
        if value is None or (kind == "number" and isinstance(raw, str)):
            raise CoqlError(
                "INVALID_QUERY",
                "value given seems to be invalid for the column",
                {"column_name": c.field.name, "clause": "where", "expected_data_type": kind},
            )
        literals.append(value)

    def value_of(record: Record) -> Any:
        return key(get(record))

    op = c.operator
    if op in ("like", "not like"):
        match = _like(literals[0])
        want = op == "like"
        return lambda r: (v := value_of(r)) is not None and match(v) == want
    if op in ("in", "not in"):
        members = frozenset(literals)
        inside = op == "in"
        return lambda r: (v := value_of(r)) is not None and (v in members) == inside
    if op == "between":
        low, high = literals
        return lambda r: (v := value_of(r)) is not None and low <= v <= high
    target = literals[0]
    compare: Callable[[Any, Any], bool] = {
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }[op]
    return lambda r: (v := value_of(r)) is not None and compare(v, target)


def _predicate(condition: Condition, schema: _Schema) -> Predicate:
    if isinstance(condition, Criterion):
        return _criterion(condition, schema)
    left = _predicate(condition.left, schema)
    right = _predicate(condition.right, schema)
    if condition.operator == "and":
        return lambda r: left(r) and right(r)
    return lambda r: left(r) or right(r)


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    more_records: bool


def _sort(
    matched: list[Record], order_by: Sequence[OrderKey], schema: _Schema, end: int
) -> list[Record]:
    """The first `end` records in the query's order; ties go to the lower id, so pages by
    OFFSET neither repeat nor skip a record. Nulls first ascending, last descending."""
    keys = list(order_by)
    if not any(k.field.path == ("id",) for k in keys):
        keys.append(OrderKey(Field(("id",)), descending=False))
    typed = [(k, schema.type_of(k.field, "order by")) for k in keys]
    if all(kind != "text" for _, kind in typed):
        # Every key is a number once read (instants, ids, booleans): one composite key, and a
        # heap when the page is small next to the matches.
        parts = [(_getter(k.field), KEYS[kind], k.descending) for k, kind in typed]

        def composite(record: Record) -> tuple[Any, ...]:
            out: list[Any] = []
            for get, key, descending in parts:
                v = key(get(record))
                if descending:
                    out.append((1, 0) if v is None else (0, -v))
                else:
                    out.append((0, 0) if v is None else (1, v))
            return tuple(out)

        if end * 8 < len(matched):
            return heapq.nsmallest(end, matched, key=composite)
        return sorted(matched, key=composite)[:end]
    # Text keys cannot be negated: stable sorts from the last key to the first.
    ordered = list(matched)
    for k, kind in reversed(typed):
        get, key = _getter(k.field), KEYS[kind]

        def text_key(record: Record, get: Any = get, key: Any = key) -> tuple[bool, Any]:
            v = key(get(record))
            return (v is not None, "" if v is None else v)

        ordered.sort(key=text_key, reverse=k.descending)
    return ordered[:end]


def _project(record: Record, fields: Sequence[Field]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for field in fields:
        value = _getter(field)(record)
        if len(field.path) == 1 and isinstance(value, Mapping) and "id" in value:
            value = {"id": value["id"]}  # a lookup selected whole comes back as its id (Zoho)
        row[field.name] = value
    row["id"] = record.get("id")
    return row


def run(query: CoqlQuery, records_of: RecordsOf, *, presorted_by: Sequence[str] = ()) -> Page:
    """The query's page. `presorted_by`: the field names (ascending) the module's records
    already come in, so a query ordered that way needs no sort."""
    try:
        records = records_of(query.module)
    except KeyError:
        raise CoqlError("INVALID_MODULE", "the given module is not supported in api") from None
    records = records if isinstance(records, Sequence) else list(records)
    schema = _Schema(records)
    for field in query.fields:
        schema.type_of(field, "select")
    for key in query.order_by:
        schema.type_of(key.field, "order by")
    matched = records
    if query.where is not None:
        keep = _predicate(query.where, schema)
        matched = [r for r in records if keep(r)]
    end = query.offset + query.limit
    if _in_store_order(query.order_by, presorted_by):
        page = list(matched[query.offset : end])
    else:
        page = _sort(list(matched), query.order_by, schema, end)[query.offset :]
    rows = [_project(r, query.fields) for r in page]
    return Page(rows, more_records=len(matched) > query.offset + len(rows))


def _in_store_order(order_by: Sequence[OrderKey], presorted_by: Sequence[str]) -> bool:
    if not presorted_by or any(k.descending for k in order_by):
        return False
    wanted = [k.field.name for k in order_by]
    if "id" not in wanted:
        wanted.append("id")  # the tie-break _sort would add
    return wanted == list(presorted_by)


def execute(
    query: CoqlQuery, records_of: RecordsOf, *, presorted_by: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The rows of the query's page: the selected fields plus `id`."""
    return run(query, records_of, presorted_by=presorted_by).rows


def answer(
    query: CoqlQuery, records_of: RecordsOf, *, presorted_by: Sequence[str] = ()
) -> dict[str, Any] | None:
    """The 200 body `{"data", "info": {"count", "more_records"}}`, or None for Zoho's 204."""
    page = run(query, records_of, presorted_by=presorted_by)
    if not page.rows:
        return None
    return {"data": page.rows, "info": {"count": len(page.rows), "more_records": page.more_records}}


def describe(query: CoqlQuery, records_of: RecordsOf) -> dict[str, dict[str, Any]]:
    """include_meta's `fields`: for each selected column its api_name and types."""
    schema = _Schema(list(records_of(query.module)))
    out: dict[str, dict[str, Any]] = {}
    for field in query.fields:
        data_type, json_type = META[schema.type_of(field, "select")]
        out[field.name] = {
            "api_name": field.name,
            "field_label": field.name.replace("_", " "),
            "data_type": data_type,
            "json_type": json_type,
        }
    return out
