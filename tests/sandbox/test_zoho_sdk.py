"""Fidelity: Zoho's official Python SDK (zohocrmsdk8-0) works against the sandbox unchanged.

The SDK is synchronous and keeps global state, so it runs in a worker thread; its token store,
resource files and log go to tmp_path.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandbox.control.client import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_REFRESH_TOKEN,
    SandboxControl,
)

sdk = pytest.importorskip("zohocrmsdk.src.com.zoho.crm.api.initializer")

from zohocrmsdk.src.com.zoho.api.authenticator.oauth_token import OAuthToken  # noqa: E402
from zohocrmsdk.src.com.zoho.api.authenticator.store.file_store import FileStore  # noqa: E402
from zohocrmsdk.src.com.zoho.api.logger import Logger  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.dc.data_center import DataCenter  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.initializer import Initializer  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.notifications import (  # noqa: E402
    ActionWrapper,
    BodyWrapper,
    DeleteNotificationParam,
    GetNotificationsParam,
    Notification,
    NotificationsOperations,
    ResponseWrapper,
    SuccessResponse,
)
from zohocrmsdk.src.com.zoho.crm.api.parameter_map import ParameterMap  # noqa: E402
from zohocrmsdk.src.com.zoho.crm.api.sdk_config import SDKConfig  # noqa: E402


def _initialize(origin: str, tmp_path: Path) -> None:
    environment = DataCenter.Environment(origin, origin + "/oauth/v2/token", origin)
    token = OAuthToken(
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
        refresh_token=DEMO_REFRESH_TOKEN,
    )
    Initializer.initialize(
        environment=environment,
        token=token,
        store=FileStore(str(tmp_path / "tokens.csv")),
        sdk_config=SDKConfig(auto_refresh_fields=False, pick_list_validation=False),
        resource_path=str(tmp_path),
        logger=Logger(Logger.Levels.INFO, str(tmp_path / "sdk.log")),
    )


def _read_all(per_page: int = 200) -> list[Any]:
    operations = NotificationsOperations()
    items: list[Any] = []
    page = 1
    while True:
        params = ParameterMap()
        params.add(GetNotificationsParam.page, page)
        params.add(GetNotificationsParam.per_page, per_page)
        response = operations.get_notifications(params)
        assert response.get_status_code() == 200
        wrapper = response.get_object()
        assert isinstance(wrapper, ResponseWrapper), wrapper
        items.extend(wrapper.get_watch())
        if not wrapper.get_info().get_more_records():
            return items
        page += 1


def _enable_and_delete() -> tuple[list[Any], int]:
    operations = NotificationsOperations()
    notification = Notification()
    notification.set_channel_id("7000001")
    notification.set_events(["Deals.create", "Leads.edit"])
    notification.set_notify_url("https://app.example/hook")
    notification.set_token("sdk-secret")
    notification.set_channel_expiry(datetime.now(UTC) + timedelta(hours=2))
    body = BodyWrapper()
    body.set_watch([notification])
    created = operations.enable_notifications(body)
    assert created.get_status_code() == 201
    wrapper = created.get_object()
    assert isinstance(wrapper, ActionWrapper), wrapper
    results = wrapper.get_watch()
    params = ParameterMap()
    params.add(DeleteNotificationParam.channel_ids, "7000001")
    deleted = operations.delete_notification(params)
    return results, deleted.get_status_code()


async def test_sdk_refreshes_and_reads_every_notification(sandbox: SandboxControl, tmp_path: Path):
    def run() -> list[Any]:
        _initialize(sandbox.origin, tmp_path)
        return _read_all()

    items = await asyncio.to_thread(run)
    assert len(items) == 250
    assert len({(i.get_channel_id(), i.get_resource_name()) for i in items}) == 250
    assert await sandbox.mint_count(DEMO_REFRESH_TOKEN) == 1
    watch_calls = await sandbox.calls("crm.watch")
    assert len(watch_calls) == 2
    [access] = await sandbox.live_access_tokens(DEMO_REFRESH_TOKEN)
    assert all(call.token == access and call.status == 200 for call in watch_calls)
    log = (tmp_path / "sdk.log").read_text()
    assert " ERROR " not in log and "Exception" not in log


def _notification(channel_id: str, events: list[str]) -> Any:
    notification = Notification()
    notification.set_channel_id(channel_id)
    notification.set_events(events)
    notification.set_notify_url("https://app.example/hook")
    notification.set_token("sdk-secret")
    notification.set_channel_expiry(datetime.now(UTC) + timedelta(hours=2))
    return notification


def _results(response: Any) -> list[Any]:
    wrapper = response.get_object()
    assert isinstance(wrapper, ActionWrapper), wrapper
    results: list[Any] = wrapper.get_watch()
    return results


def _enable_update_disable() -> dict[str, tuple[int, list[Any]]]:
    operations = NotificationsOperations()
    seen: dict[str, tuple[int, list[Any]]] = {}
    body = BodyWrapper()
    body.set_watch([_notification("7000002", ["Deals.create", "Leads.edit"])])
    created = operations.enable_notifications(body)
    seen["enable"] = (created.get_status_code(), _results(created))
    body = BodyWrapper()
    body.set_watch([_notification("7000002", ["Deals.all", "Leads.all"])])
    updated = operations.update_notifications(body)
    seen["update"] = (updated.get_status_code(), _results(updated))
    removal = Notification()
    removal.set_channel_id("7000002")
    removal.set_events(["Leads.all"])
    removal.set_delete_events(True)
    body = BodyWrapper()
    body.set_watch([removal])
    disabled_events = operations.disable_notification(body)
    seen["disable_events"] = (disabled_events.get_status_code(), _results(disabled_events))
    params = ParameterMap()
    params.add(DeleteNotificationParam.channel_ids, "7000002")
    deleted = operations.delete_notification(params)
    seen["disable_channel"] = (deleted.get_status_code(), _results(deleted))
    return seen


async def test_sdk_enables_updates_and_disables_a_channel(sandbox: SandboxControl, tmp_path: Path):
    def run() -> dict[str, tuple[int, list[Any]]]:
        _initialize(sandbox.origin, tmp_path)
        return _enable_update_disable()

    seen = await asyncio.to_thread(run)
    assert {name: status for name, (status, _) in seen.items()} == {
        "enable": 201,
        "update": 200,
        "disable_events": 200,
        "disable_channel": 200,
    }
    for name, (_, results) in seen.items():
        assert results, name
        assert all(isinstance(r, SuccessResponse) for r in results), name
        assert all(r.get_code().get_value() == "SUCCESS" for r in results), name
    # One result per module of the deleted channel, each naming it.
    [deleted] = seen["disable_channel"][1]
    assert str(deleted.get_details()["channel_id"]) == "7000002"  # the SDK reads a number
    assert all(c["channel_id"] != "7000002" for c in await sandbox.crm_channels())
    calls = [(c.method, c.status) for c in await sandbox.calls("crm.watch")]
    assert calls == [("POST", 201), ("PUT", 200), ("PATCH", 200), ("DELETE", 200)]


async def test_sdk_write_envelopes_parse(sandbox: SandboxControl, tmp_path: Path):
    def run() -> tuple[list[Any], int]:
        _initialize(sandbox.origin, tmp_path)
        return _enable_and_delete()

    results, delete_status = await asyncio.to_thread(run)
    [result] = results
    assert isinstance(result, SuccessResponse)
    assert result.get_code().get_value() == "SUCCESS"
    assert delete_status == 200
    assert len(await sandbox.crm_channels()) == 250
