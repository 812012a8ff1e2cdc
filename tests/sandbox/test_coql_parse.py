"""COQL's grammar: what the sandbox's parser accepts and what it refuses, with Zoho's codes."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.coql import CoqlError, credits_for, parse
from sandbox.coql_syntax import Criterion, Junction, tokenize

W = " where id is not null"


@pytest.mark.parametrize(
    "text",
    [
        "select Last_Name, First_Name from Leads where Last_Name = 'Smith'",  # the spec's request
        "SELECT Last_Name FROM Leads WHERE Last_Name = 'TestLead'",  # keywords in any case
        "select id from Leads where Modified_Time >= '2026-12-07T03:15:00+05:30'",
        "select id from Leads where Annual_Revenue between 10 and 20.5",
        "select id from Leads where Company in ('Acme', 'Zylker')",
        "select id from Leads where Company not in ('Acme')",
        "select id from Leads where Company like 'Acme%'",
        "select id from Leads where Company not like '%corp%'",
        "select id from Leads where First_Name is null",
        "select id from Leads where Email_Opt_Out = true",
        "select id from Leads where Annual_Revenue > -5",
        "select id from Leads where Owner.id = '5725767000000211001'",
        "select id from Leads where ((id is not null and Company = 'A') or Company = 'B')",
        "select id from Leads where (Company = 'A' and (Company = 'B' or Company = 'C'))",
        "select id, Owner, Owner.email from Leads" + W + " order by Modified_Time desc, id asc",
        "select id from Leads" + W + " limit 2000",
        "select id from Leads" + W + " limit 100 offset 98000",
        "select id from Leads" + W + " limit 98000, 2000",
        "select id from Leads" + W + " offset 400",
        "select 'Company' from Leads" + W,
        "select id\nfrom Leads\nwhere Last_Name = 'O''Brien'",
    ],
)
def test_accepted(text: str):
    parse(text)


def test_the_parts_of_a_query():
    q = parse(
        "select Last_Name, Owner.id from Leads where (Modified_Time >= '2026-12-07T00:00:00Z' "
        "and (Modified_Time > '2026-12-07T00:00:00Z' or id > '5725767000000400001')) "
        "order by Modified_Time, id limit 100, 2000"
    )
    assert [f.name for f in q.fields] == ["Last_Name", "Owner.id"]
    assert q.module == "Leads"
    assert isinstance(q.where, Junction) and q.where.operator == "and"
    assert isinstance(q.where.left, Criterion) and q.where.left.operator == ">="
    assert [(k.field.name, k.descending) for k in q.order_by] == [
        ("Modified_Time", False),
        ("id", False),
    ]
    assert (q.offset, q.limit) == (100, 2000)


def test_defaults_limit_200_offset_0():
    q = parse("select id from Leads" + W)
    assert (q.limit, q.offset, q.order_by) == (200, 0, ())


def test_strings_keep_doubled_quotes_as_one():
    q = parse("select id from Leads where Last_Name = 'O''Brien'")
    assert isinstance(q.where, Criterion) and q.where.values == ("O'Brien",)


def test_tokenizer_is_not_fooled_by_keywords_inside_strings():
    kinds = [(t.kind, t.text) for t in tokenize("where a = 'x and b = 1' or")]
    assert kinds == [
        ("word", "where"),
        ("word", "a"),
        ("symbol", "="),
        ("string", "x and b = 1"),
        ("word", "or"),
        ("end", ""),
    ]


def _criteria(n: int) -> str:
    """n criteria nested in pairs, as Zoho asks: ((A and B) and C) ..."""
    text = "id is not null"
    for i in range(1, n):
        text = f"({text} and Annual_Revenue > {i})"
    return text


def test_twenty_five_criteria_pass_twenty_six_do_not():
    parse("select id from Leads where " + _criteria(25))
    with pytest.raises(CoqlError) as exc:
        parse("select id from Leads where " + _criteria(26))
    assert (exc.value.code, exc.value.details) == (
        "LIMIT_EXCEEDED",
        {"clause": "where", "limit": 25},
    )


def test_fifty_select_fields_pass_fifty_one_do_not():
    parse("select " + ", ".join(f"F{i}" for i in range(50)) + " from Leads" + W)
    with pytest.raises(CoqlError) as exc:
        parse("select " + ", ".join(f"F{i}" for i in range(51)) + " from Leads" + W)
    assert (exc.value.code, exc.value.details) == (
        "LIMIT_EXCEEDED",
        {"clause": "select", "limit": 50},
    )


def test_ten_order_by_fields_pass_eleven_do_not():
    keys = [f"F{i}" for i in range(11)]
    parse("select id from Leads" + W + " order by " + ", ".join(keys[:10]))
    with pytest.raises(CoqlError) as exc:
        parse("select id from Leads" + W + " order by " + ", ".join(keys))
    assert (exc.value.code, exc.value.details) == (
        "LIMIT_EXCEEDED",
        {"clause": "order by", "limit": 10},
    )


def test_fifty_in_values_pass_fifty_one_do_not():
    values = ", ".join(f"'{i}'" for i in range(51))
    parse("select id from Leads where Company in (" + values.rsplit(",", 1)[0] + ")")
    with pytest.raises(CoqlError) as exc:
        parse("select id from Leads where Company in (" + values + ")")
    assert exc.value.code == "LIMIT_EXCEEDED"
    assert exc.value.details == {"clause": "where", "column_name": "Company", "limit": 50}


@pytest.mark.parametrize(
    ("paging", "ok"),
    [
        ("limit 2000 offset 98000", True),
        ("limit 2000 offset 98001", False),
        ("limit 98000, 2000", True),
        ("limit 98001, 2000", False),
        ("offset 99800", True),  # with the default limit of 200
        ("offset 99801", False),
        ("limit 1 offset 99999", True),
        ("limit 1 offset 100000", False),
    ],
)
def test_offset_and_limit_reach_at_most_100000(paging: str, ok: bool):
    text = "select id from Leads" + W + " " + paging
    if ok:
        parse(text)
        return
    with pytest.raises(CoqlError) as exc:
        parse(text)
    assert (exc.value.code, exc.value.details) == (
        "LIMIT_EXCEEDED",
        {"clause": "offset", "limit": 100000},
    )


REFUSED: list[tuple[str, str, str, dict[str, Any]]] = [
    # (query, code, message, details)
    ("select id from Leads", "SYNTAX_ERROR", "missing clause", {"clause": "where"}),
    ("select id from Leads order by id", "SYNTAX_ERROR", "missing clause", {"clause": "where"}),
    ("select id", "SYNTAX_ERROR", "missing clause", {"clause": "from"}),
    ("update Leads set a = 1", "SYNTAX_ERROR", "given coql query not supported", {}),
    ("delete from Leads", "SYNTAX_ERROR", "given coql query not supported", {}),
    (
        "select id from Leads where not Company = 'A'",
        "SYNTAX_ERROR",
        "operator not supported",
        {"operator": "not"},
    ),
    (
        "select id from Leads where Company <> 'A'",
        "SYNTAX_ERROR",
        "operator not supported",
        {"operator": "<>"},
    ),
    (
        "select id from Leads where id is not null and Company = 'A' and Company = 'B'",
        "SYNTAX_ERROR",
        "error occured while parsing the query",
        {"near": "and"},
    ),
    (
        "select id from Leads where (id is not null or Company = 'A' and Company = 'B')",
        "SYNTAX_ERROR",
        "error occured while parsing the query",
        {"near": "and"},
    ),
    (
        "select id FROM",
        "SYNTAX_ERROR",
        "error occured while parsing the query",
        {"near": "end of query"},
    ),
    (
        "select , id from Leads" + W,
        "SYNTAX_ERROR",
        "unexpected token",
        {"line": 1, "column": 8, "near": ","},
    ),
    (
        "select id from Leads\nwhere Company = 'open",
        "SYNTAX_ERROR",
        "unexpected token",
        {"line": 2, "column": 17, "near": "'open"},
    ),
    (
        "select * from Leads" + W,
        "SYNTAX_ERROR",
        "unexpected token",
        {"line": 1, "column": 8, "near": "*"},
    ),
    ("select COUNT(id) from Leads" + W, "SYNTAX_ERROR", "given coql query not supported", {}),
    (  # the spec's InvalidDataUnsupportedFunction example
        "select TestFunction(Last_Name) from Leads" + W,
        "INVALID_DATA",
        "invalid data",
        {"reason": "unsupported aggregate function", "column": "TestFunction(Last_Name)"},
    ),
    ("select id as x from Leads" + W, "SYNTAX_ERROR", "given coql query not supported", {}),
    (
        "select id from Leads where Owner.role.id = '1'",
        "SYNTAX_ERROR",
        "given coql query not supported",
        {},
    ),
    (
        "select id from Leads where id in (select id from Contacts where id is not null)",
        "SYNTAX_ERROR",
        "given coql query not supported",
        {},
    ),
    (
        "select id from Leads" + W + " group by Company",
        "SYNTAX_ERROR",
        "given coql query not supported",
        {},
    ),
    (
        "select id from Leads where Company = null",
        "SYNTAX_ERROR",
        "error occured while parsing the query",
        {"near": "null"},
    ),
    (
        "select id from Leads where Company like 5",
        "SYNTAX_ERROR",
        "unexpected token",
        {"line": 1, "column": 41, "near": "5"},
    ),
    (
        "select id from Leads" + W + " limit 10 offset 5 limit 3",
        "SYNTAX_ERROR",
        "unexpected token",
        {"line": 1, "column": 61, "near": "limit"},
    ),
    (
        "select id from Leads" + W + " limit s",
        "INVALID_QUERY",
        "limit given seems to be invalid",
        {"limit": "s"},
    ),
    (
        "select id from Leads" + W + " limit 1.5",
        "INVALID_QUERY",
        "limit given seems to be invalid",
        {"limit": "1.5"},
    ),
    ("select id from Leads" + W + " limit 0", "INVALID_DATA", "limit should be greater than 0", {}),
    (
        "select id from Leads" + W + " limit -3",
        "INVALID_DATA",
        "limit should be greater than 0",
        {},
    ),
    (
        "select id from Leads" + W + " limit 2001",
        "LIMIT_EXCEEDED",
        "limit exceeds the maximum",
        {"clause": "limit", "limit": 2000},
    ),
    (
        "select id from Leads" + W + " limit 10 offset -1",
        "INVALID_QUERY",
        "offset given seems to be invalid",
        {"offset": "-1"},
    ),
    (
        "select id from Leads" + W + " offset x",
        "INVALID_QUERY",
        "offset given seems to be invalid",
        {"offset": "x"},
    ),
    (
        "select First_Name, Last_Name, First_Name from Leads" + W,
        "DUPLICATE_DATA",
        "duplicate select column",
        {"column_name": "First_Name"},
    ),
    (
        "select id from Contacts where id is not null order by id,id",  # Zoho's own example
        "DUPLICATE_DATA",
        "duplicate order by column",
        {"column_name": "id"},
    ),
    ("   ", "INVALID_QUERY", "Invalid query formed", {}),
]


@pytest.mark.parametrize(("text", "code", "message", "details"), REFUSED)
def test_refused(text: str, code: str, message: str, details: dict[str, Any]):
    with pytest.raises(CoqlError) as exc:
        parse(text)
    assert (exc.value.code, exc.value.message, exc.value.details) == (code, message, details)


def test_where_can_be_optional_for_the_other_reading():
    q = parse("select id from Leads order by id limit 5", where_required=False)
    assert q.where is None and q.limit == 5


@pytest.mark.parametrize(
    ("limit", "credits"), [(1, 1), (200, 1), (201, 2), (1000, 2), (1001, 3), (2000, 3)]
)
def test_credits_by_limit(limit: int, credits: int):
    assert credits_for(parse(f"select id from Leads{W} limit {limit}")) == credits


def test_credits_default_limit_is_one_credit():
    assert credits_for(parse("select id from Leads" + W)) == 1
