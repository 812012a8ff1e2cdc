"""ListNotifications for Desk: org resolution, the orgId header, paging, token refresh."""

from __future__ import annotations

import grpc
import httpx
import pytest

from tests.notifier.helpers import DESK, collect, list_request
from tests.rpc_errors import reason

DEMO_ORG = "3981311"


@pytest.mark.slow
async def test_lists_the_default_orgs_webhooks_with_its_org_id(sandbox, broker, notifier) -> None:
    await broker.connect()

    items = await collect(notifier.stub, list_request(app_type=DESK))

    assert len(items) == 5
    assert all(item.app_type == DESK and item.WhichOneof("item") == "desk" for item in items)
    first = items[0].desk
    assert first.name == "Sandbox webhook 1"
    assert first.url == f"https://hooks.sandbox.example/desk/{DEMO_ORG}/1"
    assert list(first.subscriptions) == ["Ticket_Add"]
    assert first.created_time.seconds > 0
    assert [item.desk.is_enabled for item in items] == [True, True, True, True, False]
    hooks = await sandbox.calls("desk.webhooks")
    assert [c.org_id for c in hooks] == [DEMO_ORG]


@pytest.mark.slow
async def test_the_resolved_org_is_cached_per_user(sandbox, broker, notifier) -> None:
    await broker.connect()
    await collect(notifier.stub, list_request(app_type=DESK))
    await collect(notifier.stub, list_request(app_type=DESK))
    counts = await sandbox.call_counts()
    assert (counts["desk.orgs"], counts["desk.webhooks"]) == (1, 2)


@pytest.mark.slow
async def test_the_connections_desk_org_id_wins_without_asking_zoho(
    sandbox, broker, notifier
) -> None:
    second = await sandbox.add_desk_org(company_name="Second")
    await sandbox.seed_desk_webhooks(second["id"], count=2)
    await broker.connect(desk_org_id=second["id"])

    items = await collect(notifier.stub, list_request(app_type=DESK))

    assert len(items) == 2
    counts = await sandbox.call_counts()
    assert counts.get("desk.orgs", 0) == 0
    assert [c.org_id for c in await sandbox.calls("desk.webhooks")] == [second["id"]]


@pytest.mark.slow
async def test_with_several_orgs_the_default_one_is_used(sandbox, broker, notifier) -> None:
    await sandbox.add_desk_org(company_name="Not default")
    await broker.connect()
    await collect(notifier.stub, list_request(app_type=DESK))
    assert [c.org_id for c in await sandbox.calls("desk.webhooks")] == [DEMO_ORG]


@pytest.mark.slow
async def test_the_default_org_is_found_when_desk_writes_booleans_as_strings(
    sandbox, broker, notifier
) -> None:
    # Organization.json's examples give isDefault as "true"/"false".
    await sandbox.add_desk_org(company_name="Not default")
    await sandbox.configure(desk_org_booleans_as_strings=True)
    await broker.connect()
    await collect(notifier.stub, list_request(app_type=DESK))
    assert [c.org_id for c in await sandbox.calls("desk.webhooks")] == [DEMO_ORG]


@pytest.mark.slow
async def test_a_user_without_a_desk_org_gets_a_typed_error(sandbox, broker, notifier) -> None:
    refresh = await sandbox.add_refresh_token(
        user="solo", scopes=["Desk.basic.READ", "Desk.webhooks.READ"]
    )
    await broker.connect(
        user_id="solo", refresh_token=refresh, scopes=["Desk.basic.READ", "Desk.webhooks.READ"]
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await collect(notifier.stub, list_request(user_id="solo", app_type=DESK))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason(caught.value) == "DESK_ORG_UNRESOLVED"


@pytest.mark.slow
async def test_pages_by_from_and_limit_in_desks_order(sandbox, broker, notifier) -> None:
    await sandbox.seed_desk_webhooks(DEMO_ORG, count=10)
    await broker.connect()
    everything = await collect(notifier.stub, list_request(app_type=DESK))
    await sandbox.clear_calls()

    paged = await collect(notifier.stub, list_request(app_type=DESK, page_size=4))

    assert len(everything) == 15
    assert [i.desk.id for i in paged] == [i.desk.id for i in everything]
    assert (await sandbox.call_counts())["desk.webhooks"] == 4  # 4 + 4 + 4 + 3


@pytest.mark.slow
async def test_invalid_oauth_is_refreshed_once(sandbox, broker, notifier) -> None:
    await broker.connect()
    done = False

    async def invalidate_on_webhooks(request: httpx.Request, _: int) -> None:
        nonlocal done
        if request.url.path.endswith("/webhooks") and not done:
            done = True
            await sandbox.invalidate_access_token(request.headers["Authorization"].split()[1])

    notifier.http.before = invalidate_on_webhooks
    items = await collect(notifier.stub, list_request(app_type=DESK))
    assert len(items) == 5
    assert [c.status for c in await sandbox.calls("desk.webhooks")] == [401, 200]


@pytest.mark.slow
async def test_a_reconnect_with_another_zoho_account_does_not_reuse_the_old_org(
    sandbox, broker, notifier
) -> None:
    # Issue 11 item 11: the org cache was keyed by (user, host), so after the user
    # reconnected with another Zoho account the first Desk call used the old account's org
    # and failed with OAUTH_ORG_MISMATCH.
    await broker.connect()
    await collect(notifier.stub, list_request(app_type=DESK))
    other_org = await sandbox.add_desk_org(user="other-account", company_name="Other")
    await sandbox.seed_desk_webhooks(other_org["id"], count=3)
    other = await sandbox.add_refresh_token(user="other-account")
    await broker.connect(refresh_token=other)  # the same user_id, another Zoho account

    items = await collect(notifier.stub, list_request(app_type=DESK))

    assert len(items) == 3
    assert [c.org_id for c in await sandbox.calls("desk.webhooks")] == [DEMO_ORG, other_org["id"]]
    assert (await sandbox.call_counts())["desk.orgs"] == 2
    # The new grant's org is cached in turn.
    await collect(notifier.stub, list_request(app_type=DESK))
    assert (await sandbox.call_counts())["desk.orgs"] == 2
