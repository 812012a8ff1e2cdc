"""The shared Zoho HTTP layer, against httpx.MockTransport (the sandbox tests cover the
same paths end to end; these pin the classification rules one by one)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from notifier.broker_client import BrokerToken
from notifier.config import RetryPolicy
from notifier.crm import CrmClient
from notifier.desk import DeskClient
from notifier.zoho_http import TokenRejected, ZohoCall, ZohoHttp
from servicekit.deadline import Deadline
from servicekit.errors import (
    MissingScope,
    OriginNotAllowed,
    ZohoBadResponse,
    ZohoRejected,
    ZohoThrottled,
    ZohoUnavailable,
)
from servicekit.origins import OriginPolicy

API = "https://www.zohoapis.eu"
FAST = RetryPolicy(max_attempts=3, backoff_seconds=0.0, max_backoff_seconds=0.0)
GRANT = BrokerToken("1000.secret.access", API)


def make_http(handler: Callable[[httpx.Request], httpx.Response]) -> tuple[ZohoHttp, list]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    policy = OriginPolicy([])
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(record),
        follow_redirects=False,
        event_hooks={"request": [policy.guard]},
    )
    return ZohoHttp(client, FAST), seen


def call(url: str = API + "/crm/v8/actions/watch", method: str = "GET", **kw) -> ZohoCall:
    return ZohoCall(
        app="crm", endpoint="crm.watch.list", method=method, url=url, scope="S.READ", **kw
    )


def crm_error(status: int, code: str) -> httpx.Response:
    body = {"code": code, "details": {}, "message": "no", "status": "error"}
    return httpx.Response(status, json=body)


async def test_sends_the_token_header_and_returns_json() -> None:
    http, seen = make_http(lambda r: httpx.Response(200, json={"ok": True}))
    reply = await http.send(call(), "1000.secret.access", Deadline(5))
    assert reply.body == {"ok": True}
    assert seen[0].headers["Authorization"] == "Zoho-oauthtoken 1000.secret.access"


async def test_5xx_is_retried_until_success() -> None:
    answers = iter([httpx.Response(500), httpx.Response(503), httpx.Response(200, json={})])
    http, seen = make_http(lambda r: next(answers))
    await http.send(call(), "t", Deadline(5))
    assert len(seen) == 3


async def test_5xx_every_time_gives_up_as_unavailable_after_the_bound() -> None:
    http, seen = make_http(lambda r: httpx.Response(500))
    with pytest.raises(ZohoUnavailable):
        await http.send(call(), "t", Deadline(5))
    assert len(seen) == FAST.max_attempts


async def test_a_create_is_not_repeated_after_a_5xx() -> None:
    http, seen = make_http(lambda r: httpx.Response(500))
    with pytest.raises(ZohoUnavailable):
        await http.send(call(method="POST", idempotent=False), "t", Deadline(5))
    assert len(seen) == 1


async def test_a_refused_connection_is_retried_even_for_a_create() -> None:
    attempts = iter([httpx.ConnectError("refused"), None])

    def handler(request: httpx.Request) -> httpx.Response:
        failure = next(attempts)
        if failure:
            raise failure
        return httpx.Response(200, json={})

    http, seen = make_http(handler)
    await http.send(call(method="POST", idempotent=False), "t", Deadline(5))
    assert len(seen) == 2


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (crm_error(401, "INVALID_TOKEN"), "INVALID_TOKEN"),
        (crm_error(401, "AUTHENTICATION_FAILURE"), "AUTHENTICATION_FAILURE"),
        (httpx.Response(401, json={"errorCode": "INVALID_OAUTH", "message": "x"}), "INVALID_OAUTH"),
    ],
)
async def test_rejected_tokens_are_told_apart(response: httpx.Response, code: str) -> None:
    http, seen = make_http(lambda r: response)
    with pytest.raises(TokenRejected) as caught:
        await http.send(call(), "t", Deadline(5))
    assert caught.value.zoho_code == code
    assert len(seen) == 1


@pytest.mark.parametrize(
    "response",
    [
        crm_error(401, "OAUTH_SCOPE_MISMATCH"),
        httpx.Response(403, json={"errorCode": "SCOPE_MISMATCH", "message": "x"}),
    ],
)
async def test_scope_mismatch_names_the_scope(response: httpx.Response) -> None:
    http, _ = make_http(lambda r: response)
    with pytest.raises(MissingScope) as caught:
        await http.send(call(), "t", Deadline(5))
    assert caught.value.metadata["scope"] == "S.READ"


async def test_429_is_throttled_with_zohos_retry_after_and_not_retried() -> None:
    response = crm_error(429, "TOO_MANY_REQUESTS")
    response.headers["Retry-After"] = "7"
    http, seen = make_http(lambda r: response)
    with pytest.raises(ZohoThrottled) as caught:
        await http.send(call(), "t", Deadline(5))
    assert caught.value.retry_after == 7
    assert len(seen) == 1


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>login</html>"),
        httpx.Response(200, content=b'{"watch": [', headers={"content-type": "application/json"}),
        httpx.Response(302, headers={"Location": "https://evil.example/"}),
    ],
)
async def test_unreadable_answers_are_bad_responses(response: httpx.Response) -> None:
    http, seen = make_http(lambda r: response)
    with pytest.raises(ZohoBadResponse):
        await http.send(call(), "t", Deadline(5))
    assert len(seen) == 1


async def test_other_4xx_is_rejected_with_zohos_code() -> None:
    http, _ = make_http(lambda r: crm_error(400, "INVALID_MODULE"))
    with pytest.raises(ZohoRejected) as caught:
        await http.send(call(), "t", Deadline(5))
    assert caught.value.metadata == {"zoho_code": "INVALID_MODULE", "http_status": "400"}


@pytest.mark.slow
async def test_a_host_outside_the_policy_is_never_contacted() -> None:
    http, seen = make_http(lambda r: httpx.Response(200, json={}))
    with pytest.raises(OriginNotAllowed):
        await http.send(call(url="https://evil.example/crm"), "t", Deadline(5))
    assert seen == []


async def test_crm_page_reads_more_records_and_drops_the_channel_token() -> None:
    item = {
        "channel_id": "1000000068001",
        "events": ["Leads.create"],
        "channel_expiry": "2023-08-02T16:51:03-11:00",
        "notify_url": "https://hooks.example/x",
        "token": "verify-me",
        "resource_name": "Leads",
        "resource_id": "5725767000000002175",
        "resource_uri": "https://www.zohoapis.com/crm/v8/Leads",
        "notify_on_related_action": True,
        "return_affected_field_values": False,
        "fields": None,
        "notification_condition": [],
    }
    body = {"watch": [item], "info": {"per_page": 1, "count": 1, "page": 1, "more_records": True}}
    http, seen = make_http(lambda r: httpx.Response(200, json=body))
    page = await CrmClient(http).list_page(
        GRANT, page=1, per_page=1, module="Leads", channel_id="", deadline=Deadline(5)
    )
    assert page.next == 2
    assert seen[0].url.params["module"] == "Leads"
    assert seen[0].url.params["per_page"] == "1"
    channel = page.items[0].crm
    assert channel.channel_expiry.ToJsonString() == "2023-08-03T03:51:03Z"
    assert "verify-me" not in str(page.items[0])


async def test_crm_204_is_an_empty_last_page() -> None:
    http, _ = make_http(lambda r: httpx.Response(204))
    page = await CrmClient(http).list_page(
        GRANT, page=1, per_page=200, module="", channel_id="", deadline=Deadline(5)
    )
    assert (list(page.items), page.next) == ([], None)


@pytest.mark.parametrize(
    "body",
    [
        {"watch": [{"channel_id": ["x"]}], "info": {"more_records": False}},
        {"watch": [{"channel_id": "1", "events": "Leads.create"}], "info": {"more_records": False}},
        {"watch": [{"channel_id": "1", "channel_expiry": "soon"}], "info": {"more_records": False}},
        {"watch": [{"channel_id": "1"}]},
        {"watch": "none"},
        [1, 2],
    ],
)
async def test_crm_malformed_pages_are_bad_responses(body: object) -> None:
    http, _ = make_http(lambda r: httpx.Response(200, content=json.dumps(body).encode()))
    with pytest.raises(ZohoBadResponse):
        page = await CrmClient(http).list_page(
            GRANT, page=1, per_page=200, module="", channel_id="", deadline=Deadline(5)
        )
        list(page.items)  # items are converted as they are read


async def test_crm_items_are_converted_as_read_so_good_ones_before_a_bad_one_go_out() -> None:
    good = {"channel_id": "1", "events": ["Leads.create"]}
    body = {
        "watch": [good, {"channel_id": "2", "events": "Leads.edit"}],
        "info": {"more_records": False},
    }
    http, _ = make_http(lambda r: httpx.Response(200, json=body))
    page = await CrmClient(http).list_page(
        GRANT, page=1, per_page=200, module="", channel_id="", deadline=Deadline(5)
    )
    items = iter(page.items)
    assert next(items).crm.channel_id == "1"
    with pytest.raises(ZohoBadResponse, match=r"watch item\.events is not a list of strings"):
        next(items)


async def test_desk_page_sends_org_id_and_pages_by_from_and_limit() -> None:
    hooks = [{"id": str(i), "name": f"h{i}", "subscriptions": {"Ticket_Add": None}} for i in (1, 2)]
    http, seen = make_http(lambda r: httpx.Response(200, json={"data": hooks}))
    page = await DeskClient(http).list_page(
        GRANT, "https://desk.zoho.eu", "3981311", start=4, limit=2, deadline=Deadline(5)
    )
    assert seen[0].headers["orgId"] == "3981311"
    assert (seen[0].url.params["from"], seen[0].url.params["limit"]) == ("4", "2")
    assert page.next == 6
    assert [n.desk.subscriptions[0] for n in page.items] == ["Ticket_Add", "Ticket_Add"]


async def test_running_out_of_the_callers_time_is_deadline_exceeded_not_a_retry() -> None:
    from servicekit.errors import DeadlineExceeded

    seen: list[httpx.Request] = []

    async def never_answers(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    client = httpx.AsyncClient(transport=httpx.MockTransport(never_answers))
    with pytest.raises(DeadlineExceeded):
        await ZohoHttp(client, FAST).send(call(), "t", Deadline(0.2))
    assert len(seen) == 1
