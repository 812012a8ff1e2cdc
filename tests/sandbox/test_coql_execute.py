"""COQL's evaluation over records as the store holds them: filters, ordering, paging, lookups,
field errors; and properties (hypothesis) that tie the operators to set algebra."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.coql import CoqlError, answer, describe, execute, parse, run
from tests.sandbox.coql_records import OWNERS, instant, leads

LEADS = leads(300)


def records_of(module: str) -> list[dict[str, Any]]:
    return {"Leads": LEADS, "Contacts": []}[module]


def ids(where: str, *, order: str = "", limit: int | None = 2000) -> list[str]:
    text = f"select id from Leads where {where} {order}"
    if limit is not None:
        text += f" limit {limit}"
    return [row["id"] for row in execute(parse(text), records_of)]


def expected(keep: Any) -> list[str]:
    return [r["id"] for r in LEADS if keep(r)]


def test_the_spec_example_shape():
    body = answer(
        parse("select Last_Name, First_Name from Leads where Last_Name = 'Lead 1'"), records_of
    )
    assert body is not None
    assert set(body) == {"data", "info"}
    assert body["info"] == {"count": len(body["data"]), "more_records": False}
    assert body["data"][0] == {"Last_Name": "Lead 1", "First_Name": "F1", "id": LEADS[1]["id"]}


def test_nothing_matching_is_none_for_204():
    assert answer(parse("select id from Leads where Company = 'Nobody'"), records_of) is None
    assert answer(parse("select id from Contacts where id is not null"), records_of) is None


def test_datetimes_compare_as_instants_across_offsets():
    cut = "2026-12-01T10:00:00+05:30"  # 04:30 UTC
    got = ids(f"Modified_Time >= '{cut}'", order="order by id")
    assert got == expected(lambda r: instant(r["Modified_Time"]) >= instant(cut))
    assert any("+05:30" in r["Modified_Time"] for r in LEADS if r["id"] in got)
    assert any("+00:00" in r["Modified_Time"] for r in LEADS if r["id"] in got)


def test_order_by_modified_time_is_by_instant_then_id():
    rows = execute(
        parse(
            "select Modified_Time from Leads where id is not null order by Modified_Time limit 2000"
        ),
        records_of,
    )
    keys = [(instant(r["Modified_Time"]), int(r["id"])) for r in rows]
    assert keys == sorted(keys) and len(keys) == len(LEADS)


def test_order_desc_and_text_keys():
    rows = execute(
        parse(
            "select Company, Annual_Revenue from Leads where id is not null"
            " order by Company desc, Annual_Revenue limit 2000"
        ),
        records_of,
    )
    companies = [r["Company"] for r in rows]
    present = [c for c in companies if c is not None]
    assert present == sorted(present, reverse=True)
    assert companies[-len([c for c in companies if c is None]) :] == [None] * companies.count(None)
    for a, b in itertools.pairwise(rows):
        if a["Company"] == b["Company"]:
            assert (a["Annual_Revenue"], int(a["id"])) <= (b["Annual_Revenue"], int(b["id"]))


def test_default_order_is_id_ascending():
    got = ids("id is not null")
    assert got == sorted(got, key=int) == [r["id"] for r in LEADS]


@pytest.mark.parametrize(
    ("where", "keep"),
    [
        ("Company = 'Acme'", lambda r: r["Company"] == "Acme"),
        ("Company != 'Acme'", lambda r: r["Company"] not in (None, "Acme")),
        ("Company like 'Acme%'", lambda r: (r["Company"] or "").startswith("Acme")),
        ("Company like '%Corp'", lambda r: (r["Company"] or "").endswith("Corp")),
        ("Company like '%lk%'", lambda r: "lk" in (r["Company"] or "")),
        (
            "Company not like 'Acme%'",
            lambda r: r["Company"] is not None and not r["Company"].startswith("Acme"),
        ),
        ("Company in ('Acme', 'Globex')", lambda r: r["Company"] in ("Acme", "Globex")),
        (
            "Company not in ('Acme', 'Globex')",
            lambda r: r["Company"] not in (None, "Acme", "Globex"),
        ),
        ("Company is null", lambda r: r["Company"] is None),
        ("First_Name is not null", lambda r: r["First_Name"] is not None),
        ("Annual_Revenue between 100 and 200", lambda r: 100 <= r["Annual_Revenue"] <= 200),
        ("Annual_Revenue < 50", lambda r: r["Annual_Revenue"] < 50),
        ("Email_Opt_Out = true", lambda r: r["Email_Opt_Out"]),
        ("Closing_Date <= '2026-12-03'", lambda r: r["Closing_Date"] <= "2026-12-03"),
        (f"Owner = '{OWNERS[1]['id']}'", lambda r: r["Owner"] is OWNERS[1]),
        (f"Owner.id in ('{OWNERS[0]['id']}')", lambda r: r["Owner"] is OWNERS[0]),
        ("Owner.email = 'other@sandbox.example'", lambda r: r["Owner"] is OWNERS[1]),
        (f"id > '{LEADS[250]['id']}'", lambda r: int(r["id"]) > int(LEADS[250]["id"])),
        (
            "id in (5725767000000400003, '5725767000000400004')",
            lambda r: r["id"] in ("5725767000000400003", "5725767000000400004"),
        ),
    ],
)
def test_operators(where: str, keep: Any):
    assert ids(where) == expected(keep)


def test_paging_by_offset_walks_the_whole_order_once():
    order = "order by Modified_Time desc"
    whole = ids("id is not null", order=order)
    pages: list[str] = []
    for offset in range(0, 400, 70):
        q = parse(f"select id from Leads where id is not null {order} limit {offset}, 70")
        page = run(q, records_of)
        pages.extend(row["id"] for row in page.rows)
        assert page.more_records == (offset + 70 < len(LEADS))
    assert pages == whole


def test_key_paging_past_the_offset_cap():
    """ZOHO.md's recipe: Modified_Time >= t and (Modified_Time > t or id > last)."""
    seen: list[str] = []
    where = "id is not null"
    while True:
        q = parse(
            f"select Modified_Time from Leads where {where} order by Modified_Time, id limit 40"
        )
        rows = execute(q, records_of)
        if not rows:
            break
        seen.extend(r["id"] for r in rows)
        t, last = rows[-1]["Modified_Time"], rows[-1]["id"]
        where = f"(Modified_Time >= '{t}' and (Modified_Time > '{t}' or id > '{last}'))"
    assert sorted(seen, key=int) == [r["id"] for r in LEADS] and len(set(seen)) == len(seen)


def test_lookups_selected_whole_give_their_id_and_by_property_the_value():
    [row] = execute(
        parse(f"select Owner, Owner.name from Leads where id = '{LEADS[1]['id']}'"), records_of
    )
    assert row == {
        "Owner": {"id": OWNERS[1]["id"]},
        "Owner.name": "Other User",
        "id": LEADS[1]["id"],
    }


@pytest.mark.parametrize(
    ("text", "code", "message", "details"),
    [
        (
            "select Nope from Leads where id is not null",
            "INVALID_QUERY",
            "column given seems to be invalid",
            {"column_name": "Nope", "clause": "select"},
        ),
        (
            "select id from Leads where Nope = 'x'",
            "INVALID_QUERY",
            "column given seems to be invalid",
            {"column_name": "Nope", "clause": "where"},
        ),
        (
            "select id from Leads where id is not null order by Nope",
            "INVALID_QUERY",
            "column given seems to be invalid",
            {"column_name": "Nope", "clause": "order by"},
        ),
        (
            "select Company.id from Leads where id is not null",
            "INVALID_QUERY",
            "column given seems to be invalid",
            {"column_name": "Company.id", "clause": "select"},
        ),
        (  # the spec's InvalidQueryInvalidOperator example
            "select First_Name from Leads where First_Name > 'x'",
            "INVALID_QUERY",
            "Invalid query formed",
            {"reason": "invalid operator found", "column_name": "First_Name", "operator": ">"},
        ),
        (
            "select id from Leads where Modified_Time like '2026%'",
            "INVALID_QUERY",
            "Invalid query formed",
            {
                "reason": "invalid operator found",
                "column_name": "Modified_Time",
                "operator": "like",
            },
        ),
        (
            "select id from Leads where Owner between '1' and '2'",
            "INVALID_QUERY",
            "Invalid query formed",
            {"reason": "invalid operator found", "column_name": "Owner", "operator": "between"},
        ),
        (
            "select id from Leads where Modified_Time > '2026-12-07'",
            "INVALID_QUERY",
            "value given seems to be invalid for the column",
            {"column_name": "Modified_Time", "clause": "where", "expected_data_type": "datetime"},
        ),
        (
            "select id from Leads where Modified_Time > '2026-12-07T03:15:00'",  # no offset
            "INVALID_QUERY",
            "value given seems to be invalid for the column",
            {"column_name": "Modified_Time", "clause": "where", "expected_data_type": "datetime"},
        ),
        (
            "select id from Leads where Annual_Revenue > '12'",
            "INVALID_QUERY",
            "value given seems to be invalid for the column",
            {"column_name": "Annual_Revenue", "clause": "where", "expected_data_type": "number"},
        ),
        (
            "select id from Leads where Owner = 'Demo User'",
            "INVALID_QUERY",
            "value given seems to be invalid for the column",
            {"column_name": "Owner", "clause": "where", "expected_data_type": "lookup"},
        ),
        (  # the spec's InvalidModule example
            "select id from Deals where id is not null",
            "INVALID_MODULE",
            "the given module is not supported in api",
            {},
        ),
    ],
)
def test_refused_against_the_records(text: str, code: str, message: str, details: dict[str, Any]):
    with pytest.raises(CoqlError) as exc:
        execute(parse(text), records_of)
    assert (exc.value.code, exc.value.message, exc.value.details) == (code, message, details)


def test_store_order_is_used_without_sorting_when_it_matches():
    by_store = sorted(LEADS, key=lambda r: (instant(r["Modified_Time"]), int(r["id"])))
    q = parse(
        "select id from Leads where Annual_Revenue > 100 order by Modified_Time limit 50 offset 10"
    )
    sorted_rows = execute(q, lambda m: LEADS)
    presorted_rows = execute(q, lambda m: by_store, presorted_by=("Modified_Time", "id"))
    assert presorted_rows == sorted_rows


def test_describe_gives_types_for_include_meta():
    meta = describe(
        parse("select Last_Name, Modified_Time, Owner from Leads where id is not null"), records_of
    )
    assert meta["Last_Name"]["data_type"] == "text"
    assert meta["Modified_Time"]["data_type"] == "datetime"
    assert meta["Owner"]["json_type"] == "jsonobject"


# ---- properties ------------------------------------------------------------------------------

CRITERIA = st.sampled_from(
    [
        "Company = 'Acme'",
        "Company like '%e%'",
        "Company is null",
        "First_Name in ('F0', 'F2')",
        "Annual_Revenue >= 500",
        "Annual_Revenue between 100 and 700",
        "Email_Opt_Out = false",
        "Modified_Time < '2026-12-01T12:00:00+05:30'",
        "Created_Time > '2026-11-30T00:01:00Z'",
        f"Owner = '{OWNERS[0]['id']}'",
        "Closing_Date between '2026-12-05' and '2026-12-20'",
        "id <= '5725767000000400150'",
    ]
)


@settings(max_examples=60, deadline=None)
@given(a=CRITERIA, b=CRITERIA)
def test_and_is_the_intersection_or_the_union(a: str, b: str):
    left, right = set(ids(a)), set(ids(b))
    assert set(ids(f"{a} and {b}")) == left & right
    assert set(ids(f"({a}) or ({b})")) == left | right


@settings(max_examples=40, deadline=None)
@given(a=CRITERIA, b=CRITERIA, c=CRITERIA)
def test_brackets_group_as_written(a: str, b: str, c: str):
    sa, sb, sc = set(ids(a)), set(ids(b)), set(ids(c))
    assert set(ids(f"(({a} and {b}) or {c})")) == (sa & sb) | sc
    assert set(ids(f"({a} and ({b} or {c}))")) == sa & (sb | sc)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(
        st.sampled_from(["Acme", "Zylker", "Globex", "Acme Corp", "x"]), min_size=1, max_size=4
    )
)
def test_in_and_not_in_split_the_non_null_values(values: list[str]):
    listed = ", ".join(f"'{v}'" for v in values)
    inside, outside = set(ids(f"Company in ({listed})")), set(ids(f"Company not in ({listed})"))
    assert inside.isdisjoint(outside)
    assert inside | outside == set(ids("Company is not null"))


@settings(max_examples=30, deadline=None)
@given(limit=st.integers(1, 120), offset=st.integers(0, 320))
def test_a_page_is_a_slice_of_the_whole_order(limit: int, offset: int):
    order = "order by Annual_Revenue desc, Modified_Time"
    whole = ids("id is not null", order=order)
    page = ids("id is not null", order=f"{order} limit {offset}, {limit}", limit=None)
    assert page == whole[offset : offset + limit]
