"""Which host each app is called at, from the api_domain the broker returns. The sandbox
is one origin for everything, so Zoho's real data centres are checked here against a
mock transport behind the same OriginPolicy guard the process uses."""

from __future__ import annotations

from contextlib import aclosing

import httpx
import pytest

from notifier.broker_client import BrokerToken
from notifier.config import RetryPolicy
from notifier.crm import CrmClient
from notifier.desk import DeskClient
from notifier.notifications import DeskOrgCache, Notifications
from notifier.zoho_http import ZohoHttp
from servicekit.deadline import Deadline
from servicekit.errors import OriginNotAllowed
from servicekit.origins import OriginPolicy
from tests.notifier.helpers import CRM, DESK, list_request


class FixedBroker:
    """Hands out one grant; the routing under test never refreshes."""

    def __init__(self, api_domain: str, desk_org_id: str = "") -> None:
        self.grant = BrokerToken("1000.abc.def", api_domain, desk_org_id)

    async def get_token(self, user_id: str, app_type: int, deadline: Deadline) -> BrokerToken:
        return self.grant


def answer(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/api/v1/organizations":
        return httpx.Response(200, json={"data": [{"id": "555", "isDefault": True}]})
    return httpx.Response(204)


def notifications(api_domain: str, seen: list[httpx.Request], **kw: str) -> Notifications:
    policy = OriginPolicy([])

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    client = httpx.AsyncClient(
        transport=httpx.MockTransport(record), event_hooks={"request": [policy.guard]}
    )
    http = ZohoHttp(client, RetryPolicy())
    return Notifications(
        FixedBroker(api_domain, **kw),  # type: ignore[arg-type]
        CrmClient(http),
        DeskClient(http),
        policy,
        DeskOrgCache(60),
    )


async def drain(n: Notifications, request) -> list:
    async with aclosing(n.stream_pages(request, Deadline(5))) as pages:
        return [item async for page in pages for item in page]


@pytest.mark.parametrize(
    ("api_domain", "desk_host"),
    [
        ("https://www.zohoapis.eu", "desk.zoho.eu"),
        ("https://www.zohoapis.com", "desk.zoho.com"),
        ("https://www.zohoapis.com.au", "desk.zoho.com.au"),
    ],
)
async def test_desk_goes_to_the_desk_host_of_the_same_data_centre(api_domain, desk_host) -> None:
    seen: list[httpx.Request] = []
    await drain(notifications(api_domain, seen), list_request(app_type=DESK))
    assert [(r.url.host, r.url.path) for r in seen] == [
        (desk_host, "/api/v1/organizations"),
        (desk_host, "/api/v1/webhooks"),
    ]
    assert seen[1].headers["orgId"] == "555"


async def test_crm_goes_to_the_api_domain_itself() -> None:
    seen: list[httpx.Request] = []
    await drain(notifications("https://www.zohoapis.eu", seen), list_request(app_type=CRM))
    assert [(r.url.host, r.url.path) for r in seen] == [
        ("www.zohoapis.eu", "/crm/v8/actions/watch")
    ]


@pytest.mark.parametrize(
    ("api_domain", "app_type"),
    [
        ("https://evil.example", CRM),
        ("https://evil.example", DESK),
        ("https://www.zohoapis.ca", DESK),  # no confirmed Desk host for CA: fail, do not guess
    ],
)
async def test_no_other_host_ever(api_domain, app_type) -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(OriginNotAllowed):
        await drain(notifications(api_domain, seen), list_request(app_type=app_type))
    assert seen == []
