"""Change capture's CRM read client against httpx.MockTransport, shaped as zoho/crm-oas
documents the calls (v8.0 coql, getRecords, getDeletedRecords): the queries it sends, the
headers, and how it reads Zoho's answers. The windows' paging is tested end to end against
the sandbox (test_capture_e2e.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from notifier.broker_client import BrokerToken
from notifier.capture.crm_reads import CrmReads, coql_credits, parse_time
from notifier.capture.desk_reads import DeskReads
from notifier.config import RetryPolicy
from notifier.zoho_http import ZohoHttp
from servicekit.deadline import Deadline
from servicekit.errors import MissingScope, ZohoBadResponse, ZohoRejected
from servicekit.origins import OriginPolicy

API = "https://www.zohoapis.eu"
GRANT = BrokerToken("1000.secret.access", API)
FAST = RetryPolicy(max_attempts=2, backoff_seconds=0.0, max_backoff_seconds=0.0)
T0 = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 1, 11, 0, 0, tzinfo=UTC)


def http(handler: Callable[[httpx.Request], httpx.Response]) -> tuple[ZohoHttp, list]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    client = httpx.AsyncClient(
        transport=httpx.MockTransport(record), event_hooks={"request": [OriginPolicy([]).guard]}
    )
    return ZohoHttp(client, FAST), seen


async def test_coql_first_page_is_bounded_and_ordered_on_the_key() -> None:
    body = {"data": [{"id": "5", "Modified_Time": "2026-03-01T10:00:00+00:00"}],
            "info": {"count": 1, "more_records": False}}
    zoho, seen = http(lambda r: httpx.Response(200, json=body))
    batch = await CrmReads(zoho).coql(
        GRANT, "Leads", ["id", "Modified_Time"], since=T0, until=T1, after_id=None,
        limit=200, deadline=Deadline(5),
    )
    assert batch.rows == body["data"] and batch.more is False
    request = seen[0]
    assert request.method == "POST" and request.url.path == "/crm/v8/coql"
    assert request.headers["Authorization"] == "Zoho-oauthtoken 1000.secret.access"
    query = json.loads(request.content)["select_query"]
    assert query == (
        "select id, Modified_Time from Leads where Modified_Time >= '2026-03-01T10:00:00+00:00'"
        " and Modified_Time < '2026-03-01T11:00:00+00:00'"
        " order by Modified_Time asc, id asc limit 200"
    )


async def test_coql_next_page_moves_the_key_past_the_last_row_never_an_offset() -> None:
    zoho, seen = http(lambda r: httpx.Response(204))
    batch = await CrmReads(zoho).coql(
        GRANT, "Deals", ["id"], since=T0, until=T1, after_id="5725767000003000064",
        limit=2000, deadline=Deadline(5),
    )
    assert batch.rows == [] and batch.more is False  # 204: nothing matches
    query = json.loads(seen[0].content)["select_query"]
    assert "((Modified_Time = '2026-03-01T10:00:00+00:00' and id > 5725767000003000064)" in query
    assert "or Modified_Time > '2026-03-01T10:00:00+00:00')" in query
    assert query.endswith("limit 2000") and "offset" not in query.lower()


async def test_coql_refuses_to_put_a_non_numeric_id_in_a_query() -> None:
    zoho, seen = http(lambda r: httpx.Response(204))
    with pytest.raises(ValueError, match="record id"):
        await CrmReads(zoho).coql(
            GRANT, "Leads", ["id"], since=T0, until=T1, after_id="1' or '1'='1",
            limit=200, deadline=Deadline(5),
        )
    assert seen == []


def test_coql_credits_follow_zohos_price_by_limit() -> None:
    assert [coql_credits(n) for n in (1, 200, 201, 1000, 1001, 2000)] == [1, 1, 2, 2, 3, 3]


async def test_get_records_sends_if_modified_since_sorted_ascending_with_the_page_token() -> None:
    body = {"data": [{"id": "1", "Modified_Time": "2026-03-01T15:30:00+05:30"}],
            "info": {"more_records": True, "next_page_token": "c8582xx9e7c7"}}
    zoho, seen = http(lambda r: httpx.Response(
        200, json=body, headers={"X-API-CREDITS-REMAINING": "1234"}
    ))
    batch = await CrmReads(zoho).records(
        GRANT, "Leads", ["id", "Created_Time", "Modified_Time"], since=T0,
        page_token="prev", deadline=Deadline(5),
    )
    assert batch.more and batch.next_page_token == "c8582xx9e7c7" and batch.remaining == 1234
    request = seen[0]
    assert request.headers["If-Modified-Since"] == "2026-03-01T10:00:00+00:00"
    assert dict(request.url.params) == {
        "fields": "id,Created_Time,Modified_Time", "sort_by": "Modified_Time",
        "sort_order": "asc", "per_page": "200", "page_token": "prev",
    }
    assert parse_time(batch.rows[0]["Modified_Time"]) == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


async def test_get_records_304_is_nothing_modified() -> None:
    zoho, _ = http(lambda r: httpx.Response(304))
    batch = await CrmReads(zoho).records(
        GRANT, "Leads", ["id"], since=T0, page_token=None, deadline=Deadline(5)
    )
    assert batch.rows == [] and not batch.more


async def test_an_expired_page_token_is_zohos_expired_value() -> None:
    refusal = {"code": "EXPIRED_VALUE", "details": {"param": "page_token"},
               "message": "the given page token is expired", "status": "error"}
    zoho, _ = http(lambda r: httpx.Response(400, json=refusal))
    with pytest.raises(ZohoRejected) as refused:
        await CrmReads(zoho).records(
            GRANT, "Leads", ["id"], since=T0, page_token="old", deadline=Deadline(5)
        )
    assert refused.value.zoho_code == "EXPIRED_VALUE"


async def test_deleted_records_are_paged_by_number_with_if_modified_since() -> None:
    body = {"data": [{"id": "410888000000099071", "type": "recycle", "display_name": "P",
                      "deleted_time": "2015-06-19T11:19:38+05:30", "deleted_by": None,
                      "created_by": None}],
            "info": {"per_page": 200, "count": 1, "page": 2, "more_records": False}}
    zoho, seen = http(lambda r: httpx.Response(200, json=body))
    batch = await CrmReads(zoho).deleted(GRANT, "Leads", since=T0, page=2, deadline=Deadline(5))
    assert [row["id"] for row in batch.rows] == ["410888000000099071"]
    request = seen[0]
    assert request.url.path == "/crm/v8/Leads/deleted"
    assert dict(request.url.params) == {"type": "all", "per_page": "200", "page": "2"}
    assert request.headers["If-Modified-Since"] == "2026-03-01T10:00:00+00:00"


async def test_a_scope_mismatch_names_the_read_scope() -> None:
    refusal = {"code": "OAUTH_SCOPE_MISMATCH", "details": {}, "message": "invalid oauth scope",
               "status": "error"}
    zoho, _ = http(lambda r: httpx.Response(401, json=refusal))
    with pytest.raises(MissingScope) as missing:
        await CrmReads(zoho).deleted(GRANT, "Leads", since=T0, page=1, deadline=Deadline(5))
    assert missing.value.metadata["scope"] == "ZohoCRM.modules.READ"


async def test_an_answer_without_data_is_a_bad_response() -> None:
    zoho, _ = http(lambda r: httpx.Response(200, json={"info": {}}))
    with pytest.raises(ZohoBadResponse):
        await CrmReads(zoho).coql(GRANT, "Leads", ["id"], since=T0, until=T1, after_id=None,
                                  limit=200, deadline=Deadline(5))


async def test_org_id_keys_the_credit_budget() -> None:
    zoho, seen = http(lambda r: httpx.Response(200, json={"org": [{"id": "4150868000000225013"}]}))
    assert await CrmReads(zoho).org_id(GRANT, Deadline(5)) == "4150868000000225013"
    assert seen[0].url.path == "/crm/v8/org"


async def test_desk_search_sends_the_range_less_a_millisecond_sorted_with_the_org() -> None:
    body = {"data": [{"id": "1", "modifiedTime": "2026-03-01T10:00:00.000Z"}] * 100}
    zoho, seen = http(lambda r: httpx.Response(200, json=body))
    page = await DeskReads(zoho).search(
        GRANT, "https://desk.zoho.eu", "3981311", "Ticket", since=T0, until=T1, start=900,
        deadline=Deadline(5),
    )
    assert page.full and len(page.rows) == 100
    request = seen[0]
    assert request.url.path == "/api/v1/tickets/search" and request.headers["orgId"] == "3981311"
    assert dict(request.url.params) == {
        "modifiedTimeRange": "2026-03-01T10:00:00.000Z,2026-03-01T10:59:59.999Z",
        "sortBy": "modifiedTime", "from": "900", "limit": "100",
    }
    with pytest.raises(ValueError, match="999"):
        await DeskReads(zoho).search(
            GRANT, "https://desk.zoho.eu", "3981311", "Ticket", since=T0, until=T1, start=1000,
            deadline=Deadline(5),
        )
